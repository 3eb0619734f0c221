"""The extras (issue 15, item 7): ``[all]`` is what a production host may want,
tests and docs have their own, no extra repeats a base requirement, and the
README lists them."""

from __future__ import annotations

import configparser
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def requirements(text: str) -> set[str]:
    names = set()
    for line in text.strip().splitlines():
        line = line.strip()
        if line and not line.startswith("%("):
            names.add(re.split(r"[<>=\[ ;]", line, maxsplit=1)[0].lower())
    return names


def extras() -> tuple[set[str], dict[str, str]]:
    parser = configparser.ConfigParser(interpolation=configparser.BasicInterpolation())
    parser.read(ROOT / "setup.cfg")
    base = requirements(parser["options"]["install_requires"])
    return base, dict(parser["options.extras_require"])


def test_all_is_what_a_production_host_may_want() -> None:
    _, found = extras()
    assert requirements(found["all"]) == {"flask-ldap3-login", "psycopg", "redis"}
    assert "sphinx" in requirements(found["docs"])
    assert {"pytest", "mypy", "flask-migrate"} <= requirements(found["test"])
    assert "sphinx" not in requirements(found["all"]) | requirements(found["test"])


def test_no_extra_repeats_a_base_requirement() -> None:
    base, found = extras()
    for name, text in found.items():
        assert not requirements(text) & base, name


def test_the_readme_lists_every_extra() -> None:
    _, found = extras()
    readme = (ROOT / "README.md").read_text()
    for name in found:
        if name != "ratelimit":  # listed as the redis extra's other name
            assert f"| `{name}`" in readme, name
    assert "alias `ratelimit`" in readme


def test_ci_installs_what_the_tests_need() -> None:
    # tests/test_docs.py builds the docs with Sphinx.
    assert "'.[all,test,docs]'" in (ROOT / "scripts" / "test.sh").read_text()
