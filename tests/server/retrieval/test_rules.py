"""Where a copy may land (server.retrieval.rules), TypeScript-only syntax (server.retrieval.typescript)
and names from the workspace (server.retrieval.names): real tree-sitter grammars, real texts."""

from __future__ import annotations

import pytest

from server.retrieval.names import Offer, fs_path, name_to_offer, path_to_offer, workspace_offer
from server.retrieval.rules import CopyRules, array_lengths, defines, loop_bound, open_call
from server.retrieval.typescript import is_typescript, ts_only_line, ts_only_span

DTS = (
    "export type RawAxiosRequestHeaders = Partial<RawAxiosHeaders & {\n"
    "  Accept: AxiosHeaderValue;\n"
    "}>;\n\n"
    "export interface AxiosRequestConfig<D = any> {\n  url?: string;\n}\n"
    "export declare function mergeConfig(a: AxiosRequestConfig, b?: AxiosRequestConfig): AxiosRequestConfig;\n"
    "export function plain(url, config) {\n  return request(url, config);\n}\n"
)


@pytest.mark.parametrize(
    "line",
    [
        "export type RawAxiosRequestHeaders = Partial<",
        "function f(a: string, b) {",
        "interface Foo {",
        "declare const x: number;",
        "import type { A } from './a';",
        "const x = y as any;",
        "let a = b!;",
        "class A implements B {",
        "  private x = 1;",
        "  async fetch(url: string, opts?: RequestInit) {",
        "enum Color {",
        "const n: number = 3;",
    ],
)
def test_typescript_only_lines_are_found(line: str) -> None:
    assert ts_only_line(line)


@pytest.mark.parametrize(
    "line",
    [
        "const o = { a: 'string', b: 1 };",  # a colon in an object literal is no type annotation
        "if (a < b && c > d) {",
        "return a < b > (c);",  # JavaScript parses it: comparisons, not type arguments
        "for (let i = 0; i < ",
        "foo(a, b",
        "const f = (a) => a + 1;",
        "cond ? a : b",
        "app.get('/users/:id', (req, res) => {",
        "  static async get(url, config) {",
        "  #priv() {",
        "export { a as b };",
        "  name: 'x',",
        "",
        # Once flagged among the dev packages' 150,910 JavaScript lines:
        "publish(t, publisher, {",  # an object argument, not a method's body
        "options.min && options.fixed && options.min < min,",  # a comparison, not type arguments
        "function OpenSSH_Private(type, comment, privPEM, pubPEM, pubSSH, algo,",  # a head, not a signature
        "performAction: function anonymous(yy,yy_,$avoiding_name_collisions,YY_START",
    ],
)
def test_javascript_lines_are_not_typescript(line: str) -> None:
    assert not ts_only_line(line)


def test_a_span_of_a_typescript_file_is_judged_on_that_file_s_tree() -> None:
    start = DTS.index("type Raw")
    assert ts_only_span(DTS, start, DTS.index("\n", start))
    start = DTS.index("url, config) {")
    assert not ts_only_span(DTS, start, DTS.index("\n", start))  # plain JavaScript in a .d.ts
    start = DTS.index("mergeConfig(") + len("mergeConfig(")
    assert ts_only_span(DTS, start, DTS.index("\n", start))
    assert not ts_only_span(DTS, 0, 0) and not ts_only_span(DTS, DTS.index("\n"), DTS.index("\n") + 2)
    assert is_typescript("file:///p/index.d.ts") and is_typescript("a.TSX") and not is_typescript("file:///p/a.js")


def test_a_call_site_is_told_from_a_definition() -> None:
    assert open_call("  total() { return formatPrice(") == len("  total() { return formatPrice")
    assert open_call("    this.cart.add(item, ") >= 0
    assert open_call("const end = addDays(start, ") >= 0
    for line in ("function formatPrice(", "export async function load(", "  total(", "  static async get(",
                 "if (", "  } catch (", "const f = (", "foo(a, b) + (", "test('x', async (", "export default ("):
        assert open_call(line) == -1, line
    assert defines("", "cents) {") and defines("a, ", "b) => a + b;") and defines("", "x)=>x")
    assert not defines("", "this.subtotal());") and not defines("", "(event) => {")
    assert not defines("", "'x', function (res) {") and not defines("x", ")) {")  # `if (ok(x)) {`


def test_copy_rules_refuse_definitions_typescript_and_half_words() -> None:
    at_call = CopyRules.at("file:///p/cart.js", "class Cart {\n  total() { return formatPrice(")
    assert not at_call.admits("cents) {", 12)
    assert at_call.admits("this.subtotal()); }", 12) and at_call.admits("", 12)
    assert not at_call.fits("cents) {") and at_call.fits("this.subtotal()); }")

    js = CopyRules.at("file:///p/lib/defaults.js", "}\n\nexport ")
    start = DTS.index("type Raw")
    rest = DTS[start : DTS.index("\n", start)]
    assert not js.admits(rest, 9, DTS, start, "file:///p/index.d.ts")
    plain = DTS.index("url, config) {")
    assert js.admits("url, config) {", 9, DTS, plain, "file:///p/index.d.ts")
    assert not js.fits("type RawAxiosRequestHeaders = Partial<")
    ts = CopyRules.at("file:///p/src/a.ts", "}\n\nexport ")
    assert ts.admits(rest, 9, DTS, start, "file:///p/index.d.ts") and ts.fits("type X = Partial<")

    typed = CopyRules.at("file:///p/a.js", "  return a + b;\n  false")
    assert not typed.takes("turn a + b;", 1)  # `e` of `false` matched `e` of `return`
    assert not typed.takes("y;", 5)  # all of `false`, but not what came before it
    assert typed.takes("y;", 8) and typed.takes(") {", 1)  # a word ended, not continued
    assert CopyRules.at("a.js", "false").takes("y", 5)  # the word is all there is
    assert not typed.takes("", 8)


def test_a_loop_bound_equal_to_an_array_s_length_is_its_length() -> None:
    prefix = "const xs = [1, 2, 3];\nlet sum = 0;\nfor (let j = 0; j < "
    assert loop_bound(prefix, "3; j++) {") == "xs.length; j++) {"
    assert loop_bound(prefix, "10; j++) {") == "10; j++) {"  # not the array's length: kept
    assert loop_bound(prefix, "xs.length; j++) {") == "xs.length; j++) {"
    assert loop_bound("const xs = [1, 2, 3];\nconst y = ", "3;") == "3;"  # not a loop header
    # The completion finishes the header itself (its rest is shown as the line is typed through).
    assert loop_bound("const xs = [1, 2, 3];\nfor (let j = 0; ", "j < 3; j++) {") == "j < xs.length; j++) {"
    # A bound the user typed is theirs.
    assert loop_bound("const xs = [1, 2, 3];\nfor (let j = 0; j < 3", "; j++) {") == "; j++) {"
    assert array_lengths("const a = [[1, 2], [3]];\nlet b = [];\nvar c = ['x,y', `z`];") == {"a": 2, "b": 0, "c": 2}


def test_a_half_typed_name_is_finished_with_a_name_the_project_has() -> None:
    utils = "export function formatPrice(cents) {\n  return cents / 100;\n}\n"
    prefix = "import { format"
    assert name_to_offer(prefix, " } from 'cjs-format';", lambda: ["", "\n", utils]) == "Price"
    assert name_to_offer(prefix, "Price } from './utils.js';", lambda: ["", "\n", utils]) == ""  # already right
    assert name_to_offer(prefix, " } from 'x';", lambda: ["", "\n"]) == ""  # no name in the project
    assert name_to_offer("const totalPr", "ice = 0;", lambda: ["totalPriceCents"]) == ""  # a new name
    assert name_to_offer("JSON.stri", "ngify(x);", lambda: ["stringOf(x)"]) == ""  # a member
    assert name_to_offer("x = parse", "Int(s);", lambda: ["parseArgs(argv)"]) == ""  # the runtime's
    assert name_to_offer("x = fo", "o;", lambda: ["formatPrice()"]) == ""  # too short to guess from
    two = ["formatPrice(a)", "formatDate(b)"]
    assert name_to_offer("x = format", "ted;", lambda: two) == ""  # two names as common: no pick


def test_a_relative_module_path_names_the_file_that_the_line_imports() -> None:
    files = {
        "/p/math.js": "function add(a, b) {}\nfunction subtract(a, b) {}\nmodule.exports = { add, subtract };\n",
        "/p/math.test.js": "",
        "/p/strings.js": "function slugify(t) {}\nmodule.exports = { slugify };\n",
        "/p/types.d.ts": "export declare function add(a: number, b: number): number;\n",
    }
    prefix = "const { add, subtract } = require('./"
    assert path_to_offer(prefix, "add');", "/p/math.test.js", lambda: files) == "math');"  # made up
    assert path_to_offer(prefix, "math');", "/p/math.test.js", lambda: files) == ""  # already right
    assert path_to_offer("import { slugify } from './", "math.js';", "/p/a.js", lambda: files) == "strings.js';"
    assert path_to_offer("const x = require('./", "fs');", "/p/a.js", lambda: files) == ""  # no name to go by
    assert path_to_offer("const x = require('fs", "');", "/p/a.js", lambda: files) == ""  # not relative
    nested = {"/p/lib/user.js": "class User {}\n", "/p/src/admin.js": ""}
    assert path_to_offer("const User = require('../", "User');", "/p/src/admin.js", lambda: nested) == "lib/user');"


def test_a_member_s_name_counts_as_known_but_is_not_offered() -> None:
    cart = "class Cart {\n  total() {\n    return this.items.map((item) => item.price);\n  }\n}\n"
    assert name_to_offer("const n = ite", "ms.length;", lambda: [cart]) == ""  # `this.items`: known
    assert name_to_offer("const n = ite", "mz;", lambda: [cart]) == "m"  # `item`, not the member


def test_an_object_literal_s_key_opening_a_block_is_javascript() -> None:
    assert not ts_only_line("        options: {")  # read in a class body it would be a typed field
    assert not ts_only_line("    default: {") and not ts_only_line("  foo(a, b) {")
    assert ts_only_line("  static create<T>(x: T) {")


def test_no_name_is_offered_on_a_new_line() -> None:
    licence = "AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER\n"
    assert name_to_offer(licence, "LIABILITY, WHETHER", lambda: ["OTHERWISE"]) == ""  # `$` before a last "\n"


def test_the_workspace_offer_chooses_between_a_path_and_a_name() -> None:
    files = {"file:///p/math.js": "function add(a, b) {}\nmodule.exports = { add };\n", "file:///p/t.js": ""}
    prefix = "const { add } = require('./"
    offer = workspace_offer(prefix, "\n", "file:///p/t.js", "add');", True, lambda: files)
    assert offer == Offer("math');", "'", False)
    assert workspace_offer(prefix, "')\n", "file:///p/t.js", "add", False, lambda: files) is not None  # closers only
    assert workspace_offer(prefix, "lib/x');\n", "file:///p/t.js", "", False, lambda: files) is None  # it goes on
    helper = {"file:///p/u.js": "export function formatPrice(c) {}\n"}
    name = workspace_offer("import { format", "\n", "file:///p/c.js", " } from 'x';", True, lambda: helper)
    assert name == Offer("Price", "", True)
    assert workspace_offer("import { format", "\n", "file:///p/c.js", " } from 'x';", False, lambda: helper) is None
    assert fs_path("file:///p/a%20b/c.js") == "/p/a b/c.js" and fs_path("lib/c.js") == "lib/c.js"


def test_a_huge_declaration_file_is_judged_on_the_lines_around_the_span() -> None:
    body = "export function plain(url, config) {\n  return request(url, config);\n}\n" * 4000
    dts = body + "export interface Big {\n  url?: string;\n}\nexport type X = Partial<Big>;\nexport function f(a, b) {\n"
    assert len(dts) > 256_000
    for piece, typescript in (("url?: string", True), ("type X", True), ("a, b) {", False)):
        start = dts.index(piece)
        assert ts_only_span(dts, start, dts.index("\n", start)) is typescript, piece
