"""Bundles: files in one deterministic xz-compressed tar stream, cut into parts, verified by sha256.

A bundle's index (JSON) lists every part (name, bytes, sha256), the whole compressed stream's
sha256 and every file inside (path, bytes, sha256). `write_bundle` streams: no copy of the
archive is ever made whole on disk. `extract_bundle` reads the parts back to back, checks each
part, the stream and every file, and only then moves the files into place, so a missing or
damaged part changes nothing at the destination.

Written by hand (tarfile + lzma, both in the standard library) because the other side has only
its own Python and packages, and `split`/`sha256sum` pipelines would not check anything on their
own. The tar headers carry no times, owners or modes, so the same files give the same bytes.
"""

from __future__ import annotations

import hashlib
import io
import json
import lzma
import os
import shutil
import tarfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

FORMAT = 1
CHUNK = 1 << 20  # bytes per read: bounded memory whatever the file size


class BundleError(RuntimeError):
    """A part or file is missing or does not match its recorded size and sha256."""


@dataclass
class Part:
    name: str
    bytes: int
    sha256: str


@dataclass
class Entry:
    path: str  # relative, POSIX, inside the destination
    bytes: int
    sha256: str


@dataclass
class Index:
    parts: list[Part] = field(default_factory=list)
    files: list[Entry] = field(default_factory=list)
    archive_bytes: int = 0
    archive_sha256: str = ""
    preset: int = 6
    format: int = FORMAT
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """A short name for this exact content (directory names, log lines)."""
        return self.archive_sha256[:12]

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Index:
        raw = json.loads(text)
        if raw.get("format") != FORMAT:
            raise BundleError(f"bundle index format {raw.get('format')}, expected {FORMAT}")
        return cls(parts=[Part(**p) for p in raw["parts"]], files=[Entry(**f) for f in raw["files"]],
                   archive_bytes=int(raw["archive_bytes"]), archive_sha256=str(raw["archive_sha256"]),
                   preset=int(raw["preset"]), extra=dict(raw.get("extra") or {}))

    @classmethod
    def read(cls, path: Path) -> Index:
        return cls.from_json(path.read_text(encoding="utf-8"))


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            h.update(block)
    return h.hexdigest()


def check_part(path: Path, part: Part) -> None:
    """Raise BundleError unless `path` holds exactly `part`."""
    if not path.is_file():
        raise BundleError(f"{part.name} is missing ({path})")
    if path.stat().st_size != part.bytes:
        raise BundleError(f"{part.name}: {path.stat().st_size} bytes, expected {part.bytes} (cut off?)")
    if sha256_file(path) != part.sha256:
        raise BundleError(f"{part.name}: sha256 differs from the index (damaged in transfer)")


class _PartWriter(io.RawIOBase):
    """Compresses what tarfile writes and cuts the compressed stream into parts of `part_bytes`."""

    def __init__(self, dest: Path, prefix: str, part_bytes: int, preset: int) -> None:
        self.dest, self.prefix, self.part_bytes = dest, prefix, part_bytes
        self.lzma = lzma.LZMACompressor(format=lzma.FORMAT_XZ, preset=preset)
        self.parts: list[Part] = []
        self.total = hashlib.sha256()
        self.total_bytes = 0
        self._file: BinaryIO | None = None
        self._hash = hashlib.sha256()
        self._size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self._emit(self.lzma.compress(bytes(data)))
        return len(data)

    def _emit(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            if self._file is None:
                name = f"{self.prefix}{len(self.parts) + 1:02d}"
                self._file = open(self.dest / name, "wb")  # noqa: SIM115 (closed in _close_part)
                self._hash, self._size = hashlib.sha256(), 0
                self.parts.append(Part(name, 0, ""))
            room = self.part_bytes - self._size
            piece = view[:room]
            self._file.write(piece)
            self._hash.update(piece)
            self.total.update(piece)
            self._size += len(piece)
            self.total_bytes += len(piece)
            view = view[len(piece):]
            if self._size >= self.part_bytes:
                self._close_part()

    def _close_part(self) -> None:
        if self._file is not None:
            self._file.close()
            self.parts[-1] = Part(self.parts[-1].name, self._size, self._hash.hexdigest())
            self._file = None

    def finish(self) -> None:
        self._emit(self.lzma.flush())
        self._close_part()


def _tarinfo(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode, info.uid, info.gid, info.uname, info.gname = size, 0, 0o644, 0, 0, "", ""
    return info


class _Hashing(io.RawIOBase):
    def __init__(self, f: BinaryIO) -> None:
        self.f, self.h, self.n = f, hashlib.sha256(), 0

    def readable(self) -> bool:
        return True

    def readinto(self, buf: Any) -> int:
        data = self.f.read(len(buf))
        buf[: len(data)] = data
        self.h.update(data)
        self.n += len(data)
        return len(data)


def write_bundle(files: list[tuple[Path, str]], dest: Path, *, part_bytes: int, preset: int = 6,
                 prefix: str = "part-", extra: dict[str, Any] | None = None) -> Index:
    """Write `files` ((source, path inside the bundle), in this order) as parts in `dest` + index.json."""
    if part_bytes < 1:
        raise ValueError("part_bytes must be positive")
    dest.mkdir(parents=True, exist_ok=True)
    for old in dest.glob(f"{prefix}*"):
        old.unlink()
    writer = _PartWriter(dest, prefix, part_bytes, preset)
    entries: list[Entry] = []
    with tarfile.open(fileobj=writer, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for src, name in files:
            _safe(name)
            size = src.stat().st_size
            with open(src, "rb") as f:
                hashing = _Hashing(f)
                tar.addfile(_tarinfo(name, size), hashing)  # type: ignore[arg-type]
            if hashing.n != size:
                raise BundleError(f"{src} changed while it was bundled")
            entries.append(Entry(name, size, hashing.h.hexdigest()))
    writer.finish()
    index = Index(parts=writer.parts, files=entries, archive_bytes=writer.total_bytes,
                  archive_sha256=writer.total.hexdigest(), preset=preset, extra=dict(extra or {}))
    (dest / "index.json").write_text(index.to_json(), encoding="utf-8")
    return index


def _safe(name: str) -> PurePosixPath:
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or not path.parts:
        raise BundleError(f"unsafe path in a bundle: {name!r}")
    return path


class _Joined(io.RawIOBase):
    """The parts read back to back, each checked against the index when it has been read."""

    def __init__(self, folder: Path, parts: list[Part]) -> None:
        self.paths = iter([(folder / p.name, p) for p in parts])
        self.total = hashlib.sha256()
        self._f: BinaryIO | None = None
        self._part: Part | None = None
        self._h = hashlib.sha256()
        self._n = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buf: Any) -> int:
        while True:
            if self._f is None:
                nxt = next(self.paths, None)
                if nxt is None:
                    return 0
                path, self._part = nxt
                if not path.is_file():
                    raise BundleError(f"{self._part.name} is missing ({path})")
                self._f, self._h, self._n = open(path, "rb"), hashlib.sha256(), 0  # noqa: SIM115
            data = self._f.read(len(buf))
            if data:
                buf[: len(data)] = data
                self._h.update(data)
                self.total.update(data)
                self._n += len(data)
                return len(data)
            self._f.close()
            self._f = None
            part = self._part
            assert part is not None
            if self._n != part.bytes or self._h.hexdigest() != part.sha256:
                raise BundleError(f"{part.name}: {self._n} bytes / sha256 differ from the index")


def extract_bundle(folder: Path, index: Index, dest: Path, *, staging: Path | None = None) -> list[Path]:
    """Check and extract the bundle whose parts are in `folder` into `dest`; returns the files.

    Everything is written to `staging` (default DEST/.incoming-KEY) first; files move into DEST
    only when every part, the whole stream and every file match the index.
    """
    for part in index.parts:  # sizes first: a cut-off transfer is reported before any work
        path = folder / part.name
        if not path.is_file() or path.stat().st_size != part.bytes:
            raise BundleError(f"{part.name} is missing or incomplete in {folder}")
    stage = staging or dest / f".incoming-{index.key}"
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    expected = {e.path: e for e in index.files}
    seen: dict[str, str] = {}
    try:
        joined = _Joined(folder, index.parts)
        with tarfile.open(fileobj=joined, mode="r|xz") as tar:  # type: ignore[call-overload]
            for member in tar:
                name = str(_safe(member.name))
                if not member.isfile() or name not in expected:
                    raise BundleError(f"unexpected member {member.name!r} in the bundle")
                src = tar.extractfile(member)
                assert src is not None
                target = stage / name
                target.parent.mkdir(parents=True, exist_ok=True)
                h = hashlib.sha256()
                with open(target, "wb") as out:
                    while block := src.read(CHUNK):
                        h.update(block)
                        out.write(block)
                seen[name] = h.hexdigest()
        while joined.read(CHUNK):  # the tar's zero padding and the xz footer: every byte is checked
            pass
        if joined.total.hexdigest() != index.archive_sha256:
            raise BundleError("the joined parts do not match the archive's sha256")
        for entry in index.files:
            if seen.get(entry.path) != entry.sha256:
                raise BundleError(f"{entry.path}: missing or its sha256 differs from the index")
        placed = []
        for entry in index.files:
            target = dest / entry.path
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(stage / entry.path, target)
            placed.append(target)
        return placed
    except (lzma.LZMAError, tarfile.TarError, EOFError) as exc:
        raise BundleError(f"the bundle does not decode: {exc}") from exc
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def bundle_files(root: Path) -> Iterator[tuple[Path, str]]:
    """Every file under `root` (sorted, relative names), for `write_bundle`."""
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        yield path, path.relative_to(root).as_posix()
