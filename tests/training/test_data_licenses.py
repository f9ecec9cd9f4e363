"""License checks on adversarial SPDX expressions and package.json shapes."""

from __future__ import annotations

import pytest

from training.data.licenses import label_allowed, package_license, package_license_allowed, spdx_allowed

ALLOWED = ["mit", "isc", "apache-2.0"]


@pytest.mark.parametrize("expr", [
    "MIT", "mit", "ISC", "Apache-2.0", "APACHE-2.0", " MIT ", "(MIT)", "MIT OR Apache-2.0", "(MIT OR Apache-2.0)",
    "MIT AND ISC", "(ISC OR (MIT AND Apache-2.0))", "MIT or ISC",
])
def test_permissive_expressions_pass(expr: str) -> None:
    assert spdx_allowed(expr, ALLOWED) == (True, "ok")


@pytest.mark.parametrize(("expr", "reason"), [
    ("", "license_missing"),
    ("GPL-3.0", "license_not_permissive"),
    ("MIT OR GPL-3.0", "license_not_permissive"),
    ("GPL-3.0 OR MIT", "license_not_permissive"),
    ("(MIT AND GPL-2.0-only)", "license_not_permissive"),
    ("BSD-3-Clause", "license_not_permissive"),
    ("UNLICENSED", "license_not_permissive"),
    ("MIT+", "license_not_permissive"),
    ("MIT-0", "license_not_permissive"),
    ("MITX", "license_not_permissive"),
    ("Apache-2.0 WITH LLVM-exception", "license_exception"),
    ("SEE LICENSE IN LICENSE.md", "license_see_file"),
    ("see license in ./LICENSE", "license_see_file"),
    ("(MIT", "license_malformed"),
    ("MIT)", "license_malformed"),
    ("MIT OR", "license_malformed"),
    ("OR MIT", "license_malformed"),
    ("MIT ISC", "license_malformed"),
    ("()", "license_malformed"),
])
def test_everything_else_is_rejected_with_a_reason(expr: str, reason: str) -> None:
    assert spdx_allowed(expr, ALLOWED) == (False, reason)


def test_package_json_shapes() -> None:
    assert package_license({"license": "MIT"}) == "MIT"
    assert package_license({"license": {"type": "ISC", "url": "u"}}) == "ISC"
    assert package_license({"licenses": [{"type": "MIT"}, {"type": "Apache-2.0"}]}) == "(MIT) AND (Apache-2.0)"
    assert package_license({"licenses": ["MIT"]}) == "(MIT)"
    assert package_license({"licenses": [{"url": "no type"}]}) == ""
    assert package_license({"license": 3}) == ""
    assert package_license({}) == ""
    assert package_license_allowed({"licenses": [{"type": "MIT"}, {"type": "GPL-2.0"}]}, ALLOWED)[0] is False
    assert package_license_allowed({"licenses": [{"type": "MIT"}, {"type": "ISC"}]}, ALLOWED)[0] is True
    assert package_license_allowed({"license": {"type": "GPL-3.0"}}, ALLOWED)[:2] == (False, "license_not_permissive")


def test_allow_list_is_configurable() -> None:
    assert spdx_allowed("BSD-3-Clause", [*ALLOWED, "bsd-3-clause"]) == (True, "ok")
    assert spdx_allowed("Apache-2.0", ["mit"])[0] is False


def test_github_code_labels() -> None:
    assert label_allowed("mit", ALLOWED) and label_allowed("Apache-2.0", ALLOWED)
    assert not label_allowed("gpl-3.0", ALLOWED)
    assert not label_allowed("", ALLOWED) and not label_allowed(None, ALLOWED)
