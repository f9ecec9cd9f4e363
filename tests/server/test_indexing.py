"""server.indexing: the index of the workspace folders, shared by tokenizers with one vocabulary,
its status, and what opening, editing and closing documents do to it (with a real tokenizer)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from server.indexing import WorkspaceIndexer
from server.retrieval.vocab import vocabulary_key

HELPER = "export function zorbleQuantify(widgets) {\n  return widgets.length;\n}\n"
OTHER = "export const limit = 10;\n"


@pytest.fixture(scope="module")
def tokenizers(tiny_model_dir: Path) -> tuple[Any, Any]:
    """The same tokenizer loaded twice, as the server does (early, then the engine's own)."""
    from transformers import AutoTokenizer

    from server.tokenizer import load_fast

    return load_fast(tiny_model_dir) or AutoTokenizer.from_pretrained(tiny_model_dir), AutoTokenizer.from_pretrained(
        tiny_model_dir
    )


def built(root: Path, tokenizer: Any) -> WorkspaceIndexer:
    workspace = WorkspaceIndexer()
    workspace.set_folders([root.as_uri()])
    assert workspace.status()["state"] == "not_started"
    workspace.attach(tokenizer)
    assert workspace.ready.wait(60)
    return workspace


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "helper.js").write_text(HELPER)
    (tmp_path / "other.js").write_text(OTHER)
    return tmp_path


def indexed_texts(workspace: WorkspaceIndexer) -> list[str]:
    assert workspace.index is not None
    texts, _, _ = workspace.index.copy_sources("x")
    return sorted(texts)


def test_one_index_for_tokenizers_with_one_vocabulary(project: Path, tokenizers: tuple[Any, Any]) -> None:
    early, engine = tokenizers
    assert early is not engine and vocabulary_key(early) == vocabulary_key(engine)
    workspace = built(project, early)
    index = workspace.index
    assert workspace.attached(engine) and workspace.attach(engine) is index  # no second build
    status = workspace.status()
    assert status["state"] == "ready" and status["files"] == 2
    assert status["tokens"] > 10 and status["bytes"] > 0 and status["build_s"] >= 0


def test_closing_an_unchanged_document_reindexes_nothing(project: Path, tokenizers: tuple[Any, Any]) -> None:
    workspace = built(project, tokenizers[0])
    assert workspace.index is not None
    before = workspace.index.nbytes
    uri = (project / "helper.js").as_uri()
    workspace.opened_or_changed(uri, HELPER)
    workspace.flush("file:///elsewhere.js")  # a completion in another file indexes it (same text)
    workspace.closed(uri)
    assert workspace.index.nbytes == before  # the index's delta did not grow
    assert indexed_texts(workspace) == sorted([HELPER, OTHER])


def test_closing_an_edited_document_goes_back_to_the_disk(project: Path, tokenizers: tuple[Any, Any]) -> None:
    workspace = built(project, tokenizers[0])
    uri = (project / "helper.js").as_uri()
    edited = HELPER.replace("zorbleQuantify", "zorbleRenormalize")
    workspace.opened_or_changed(uri, edited)
    workspace.flush("file:///elsewhere.js")
    assert indexed_texts(workspace) == sorted([edited, OTHER])
    workspace.closed(uri)  # never saved: the disk's text is what the workspace holds again
    assert indexed_texts(workspace) == sorted([HELPER, OTHER])
    saved = HELPER + "export const two = 2;\n"
    (project / "helper.js").write_text(saved)
    workspace.opened_or_changed(uri, saved)
    workspace.closed(uri)  # saved while open, never flushed: the disk's new text is indexed
    assert indexed_texts(workspace) == sorted([saved, OTHER])


def test_a_closed_document_outside_the_folders_leaves_the_index(project: Path, tokenizers: tuple[Any, Any]) -> None:
    workspace = built(project, tokenizers[0])
    uri = "untitled:Untitled-1"
    workspace.opened_or_changed(uri, "const scratch = 1;\n")
    workspace.flush("file:///elsewhere.js")
    assert len(indexed_texts(workspace)) == 3
    workspace.closed(uri)
    assert indexed_texts(workspace) == sorted([HELPER, OTHER])
