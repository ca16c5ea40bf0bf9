"""The code base stays ruff- and mypy-clean (the CI gate for style and types)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("vision", "zones", "models", "api")


def _run(command: list[str], cwd: Path) -> None:
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]


@pytest.mark.parametrize("check", [["check"], ["format", "--check"]], ids=["lint", "format"])
def test_ruff_is_clean(check: list[str]) -> None:
    _run([sys.executable, "-m", "ruff", *check, *PACKAGES, "tests", "benchmarks"], REPO_ROOT)


def test_mypy_is_clean(tmp_path: Path) -> None:
    # The folders are the storesense.* packages only through setuptools' package-dir;
    # mypy resolves imports by path, so give it that namespace as a tree of links.
    namespace = tmp_path / "storesense"
    namespace.mkdir()
    for package in PACKAGES:
        (namespace / package).symlink_to(REPO_ROOT / package)
    modules = [arg for package in PACKAGES for arg in ("-p", f"storesense.{package}")]
    _run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--config-file",
            str(REPO_ROOT / "pyproject.toml"),
            "--cache-dir",
            str(tmp_path / ".mypy_cache"),
            *modules,
        ],
        tmp_path,
    )
