"""Packaging metadata that `make run` builds from: no deprecated forms (setuptools prints ~50
lines of banners for them on every fresh install, which look like errors)."""

from __future__ import annotations

import re
import tomllib

from tests.conftest import REPO

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text("utf-8"))


def test_license_is_an_spdx_expression_not_a_table() -> None:
    license_ = PYPROJECT["project"]["license"]
    assert isinstance(license_, str), "project.license as a table is deprecated (PEP 639)"
    assert re.fullmatch(r"[A-Za-z0-9.+-]+( (AND|OR) [A-Za-z0-9.+-]+)*", license_)
    assert not any(c.startswith("License ::") for c in PYPROJECT["project"].get("classifiers", []))


def test_build_backend_understands_spdx_licenses() -> None:
    (req,) = [r for r in PYPROJECT["build-system"]["requires"] if r.startswith("setuptools")]
    version = re.search(r">=\s*(\d+)", req)
    assert version and int(version.group(1)) >= 77, req


def test_make_says_what_it_installs() -> None:
    makefile = (REPO / "Makefile").read_text("utf-8")
    assert "pip install --quiet" not in makefile  # silent for minutes looks like a hang
    assert "installing Python packages" in makefile
