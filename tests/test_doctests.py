"""Every docstring example in the storesense packages runs and says what it shows."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest
import storesense.api
import storesense.models
import storesense.vision
import storesense.zones

MODULES = sorted(
    info.name
    for package in (storesense.vision, storesense.zones, storesense.models, storesense.api)
    for info in pkgutil.walk_packages(package.__path__, package.__name__ + ".")
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name: str) -> None:
    result = doctest.testmod(
        importlib.import_module(name), optionflags=doctest.ELLIPSIS, report=False
    )
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"


def test_the_examples_are_found() -> None:
    attempted = sum(
        doctest.testmod(importlib.import_module(name), report=False).attempted for name in MODULES
    )
    assert attempted >= 150, f"only {attempted} docstring examples found"
