"""`training.kit.archive`: files cut into parts reassemble byte-exactly, and a missing, short or
damaged part is refused before anything reaches the destination."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from training.kit.archive import BundleError, Index, extract_bundle, write_bundle


@pytest.fixture
def sources(tmp_path: Path) -> list[tuple[Path, str]]:
    src = tmp_path / "src"
    src.mkdir()
    (src / "tokens.bin").write_bytes(os.urandom(150_000) + bytes(200_000))  # incompressible, then compressible
    (src / "tokens.json").write_text('{"offsets": [' + ", ".join(str(i * 7) for i in range(20_000)) + "]}\n")
    (src / "empty").write_bytes(b"")
    return [(src / "tokens.bin", "corpus-data/t.bin"), (src / "tokens.json", "corpus-data/t.json"),
            (src / "empty", "corpus-data/sub/empty")]


def test_parts_reassemble_byte_exact(sources: list[tuple[Path, str]], tmp_path: Path) -> None:
    index = write_bundle(sources, tmp_path / "parts", part_bytes=40_000, preset=1)
    assert len(index.parts) >= 4
    assert all(p.bytes == 40_000 for p in index.parts[:-1]) and 0 < index.parts[-1].bytes <= 40_000
    assert sum(p.bytes for p in index.parts) == index.archive_bytes
    assert Index.read(tmp_path / "parts" / "index.json") == index  # the index round-trips through JSON
    dest = tmp_path / "dest"
    placed = extract_bundle(tmp_path / "parts", index, dest)
    assert sorted(p.relative_to(dest).as_posix() for p in placed) == sorted(name for _, name in sources)
    for src, name in sources:
        assert (dest / name).read_bytes() == src.read_bytes()
    assert [p.name for p in dest.iterdir()] == ["corpus-data"]  # no staging dir is left behind


def test_the_same_files_give_the_same_parts(sources: list[tuple[Path, str]], tmp_path: Path) -> None:
    a = write_bundle(sources, tmp_path / "a", part_bytes=64_000, preset=0)
    os.utime(sources[0][0], (1, 1))  # times and owners are not in the archive
    b = write_bundle(sources, tmp_path / "b", part_bytes=64_000, preset=0)
    assert a.archive_sha256 == b.archive_sha256 and [p.sha256 for p in a.parts] == [p.sha256 for p in b.parts]


@pytest.mark.parametrize("damage", ["missing", "short", "flipped"])
def test_a_bad_part_changes_nothing(sources: list[tuple[Path, str]], tmp_path: Path, damage: str) -> None:
    index = write_bundle(sources, tmp_path / "parts", part_bytes=40_000, preset=1)
    victim = tmp_path / "parts" / index.parts[1].name
    if damage == "missing":
        victim.unlink()
    elif damage == "short":
        victim.write_bytes(victim.read_bytes()[:-10])
    else:
        data = bytearray(victim.read_bytes())
        data[100] ^= 0xFF
        victim.write_bytes(bytes(data))
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "keep.txt").write_text("before")
    with pytest.raises(BundleError):
        extract_bundle(tmp_path / "parts", index, dest)
    assert [p.name for p in dest.iterdir()] == ["keep.txt"]  # nothing extracted, no staging left


def test_unsafe_names_are_refused(tmp_path: Path) -> None:
    f = tmp_path / "x"
    f.write_text("x")
    with pytest.raises(BundleError, match="unsafe"):
        write_bundle([(f, "../x")], tmp_path / "parts", part_bytes=1000)
