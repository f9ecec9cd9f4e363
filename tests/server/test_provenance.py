"""Where a copy comes from: the occurrence found, its line, and the path shown for it."""

from __future__ import annotations

from server.provenance import Provenance, locate_copy, locate_line, provenance, relative

UTILS = "// helpers\nexport const total = sumWidgets(inventory, warehouse);\n"


def test_a_copy_is_found_in_another_file_before_the_file_itself() -> None:
    prefix = "const t = sumWidgets(inv"
    own = "export const total = sumWidgets(inventory, warehouse);\n"  # the same text, earlier in this file
    assert locate_copy(prefix, "entory, warehouse);", {"file:///ws/lib/utils.js": UTILS}, own) == (
        "file:///ws/lib/utils.js",
        2,
    )
    assert locate_copy(prefix, "entory, warehouse);", {}, "\n\n" + own) == ("", 3)


def test_the_longest_matching_tail_decides_between_occurrences() -> None:
    others = {"a.js": "x.sumWidgets(inventory);\n", "b.js": "\nconst t = sumWidgets(inventory);\n"}
    assert locate_copy("const t = sumWidgets(inv", "entory);", others, "") == ("b.js", 2)


def test_nothing_is_located_for_text_found_nowhere_or_blank() -> None:
    assert locate_copy("const t = sumWidgets(inv", "alid);", {"a.js": UTILS}, "") is None
    assert locate_copy("const t = sumWidgets(inv", "   ", {"a.js": UTILS}, "") is None
    assert locate_line("", {"a.js": UTILS}, "") is None


def test_a_line_is_found_whatever_its_indentation() -> None:
    assert locate_line("  return sumWidgets(a, b);", {"a.js": "f() {\n\treturn sumWidgets(a, b);\n}\n"}, "") == ("a.js", 2)


def test_paths_are_relative_to_the_workspace_folder_holding_them() -> None:
    folders = ["/home/u/proj", "file:///home/u/other"]
    assert relative("file:///home/u/proj/lib/utils.js", folders) == "lib/utils.js"
    assert relative("file:///home/u/other/a%20b.js", folders) == "a b.js"
    assert relative("file:///tmp/x.js", folders) == "/tmp/x.js"
    assert relative("untitled:Untitled-1", folders) == "untitled:Untitled-1"
    assert provenance(("", 4), "file:///home/u/proj/me.js", folders) == Provenance("me.js", 4)
    assert provenance(None, "file:///home/u/proj/me.js", folders) is None
    assert Provenance("lib/utils.js", 42).label() == "lib/utils.js:42"
