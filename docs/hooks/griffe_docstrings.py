"""Griffe extension: read the code's reST-flavoured docstrings as Markdown.

The docstrings are written for ``help()`` and doctest: ``Example:`` sections of ``>>>``
lines, Sphinx roles (``:class:`~x.Y```) and double backticks. This turns them into what
mkdocstrings' Google parser and Markdown expect, without touching the code.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_EXAMPLE_HEADING = re.compile(r"^(\s*)Example:\s*$", re.MULTILINE)
_ROLE = re.compile(r":(?:class|func|meth|attr|mod|data|exc|obj|py:\w+):`(~?)([^`]+)`")
_DOUBLE_BACKTICKS = re.compile(r"``([^`]+)``")


def _role(match: re.Match[str]) -> str:
    target = match.group(2)
    return f"`{target.rsplit('.', 1)[-1] if match.group(1) else target}`"


def markdown_docstring(text: str) -> str:
    """``Example:`` becomes ``Examples:``, roles and double backticks become code spans.

    >>> markdown_docstring("Uses :class:`~a.b.Tracks` and ``x``.\\n\\nExample:\\n    >>> 1")
    'Uses `Tracks` and `x`.\\n\\nExamples:\\n    >>> 1'
    """
    text = _EXAMPLE_HEADING.sub(r"\1Examples:", text)
    text = _ROLE.sub(_role, text)
    return _DOUBLE_BACKTICKS.sub(r"`\1`", text)


class MarkdownDocstrings(griffe.Extension):
    """Rewrites every loaded object's docstring with :func:`markdown_docstring`."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = markdown_docstring(obj.docstring.value)
