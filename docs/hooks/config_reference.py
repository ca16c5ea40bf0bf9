"""Render pydantic models as Markdown tables: the configuration reference of the docs site.

Every field's type, default, bounds and description come from the model itself (the
``Field(...)`` constraints and the attribute docstring under each field), so the page
cannot drift from the code. Nested models get their own section, linked from the field.
"""

from __future__ import annotations

import ast
import enum
import inspect
import textwrap
import types
import typing
from collections.abc import Iterator
from typing import Any

import annotated_types
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

_BOUNDS = (
    (annotated_types.Gt, "gt", "> {}"),
    (annotated_types.Ge, "ge", "≥ {}"),
    (annotated_types.Lt, "lt", "< {}"),
    (annotated_types.Le, "le", "≤ {}"),
    (annotated_types.MinLen, "min_length", "length ≥ {}"),
    (annotated_types.MaxLen, "max_length", "length ≤ {}"),
)


def attribute_docstrings(model: type[BaseModel]) -> dict[str, str]:
    """The string literal under each annotated attribute of ``model`` and its bases."""
    found: dict[str, str] = {}
    for cls in reversed(model.__mro__):
        if not (isinstance(cls, type) and issubclass(cls, BaseModel)) or cls is BaseModel:
            continue
        try:
            source = textwrap.dedent(inspect.getsource(cls))
        except (OSError, TypeError):
            continue
        body = ast.parse(source).body[0]
        assert isinstance(body, ast.ClassDef)
        for node, after in zip(body.body, [*body.body[1:], None], strict=True):
            if (
                isinstance(node, ast.AnnAssign)
                and isinstance(node.target, ast.Name)
                and isinstance(after, ast.Expr)
                and isinstance(after.value, ast.Constant)
                and isinstance(after.value.value, str)
            ):
                found[node.target.id] = inspect.cleandoc(after.value.value)
    return found


def _anchor(model: type[BaseModel]) -> str:
    return model.__name__.lower()


def _models_in(annotation: Any) -> Iterator[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
    for arg in typing.get_args(annotation):
        yield from _models_in(arg)


def type_name(annotation: Any) -> str:
    """A short, readable spelling of a field's type (models link to their section)."""
    if annotation is type(None):
        return "null"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return f"[{annotation.__name__}](#{_anchor(annotation)})"
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return " \\| ".join(f'`"{member.value}"`' for member in annotation)
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Literal:
        return " \\| ".join(f"`{value!r}`".replace("'", '"') for value in args)
    if origin is typing.Annotated:
        return type_name(args[0])
    if origin in (typing.Union, types.UnionType):
        return " \\| ".join(type_name(arg) for arg in args)
    if origin is not None:
        name = getattr(origin, "__name__", str(origin))
        inner = ", ".join("..." if arg is Ellipsis else type_name(arg) for arg in args)
        return f"{name}[{inner}]"
    return getattr(annotation, "__name__", str(annotation)).replace("|", "\\|")


def _default(field: FieldInfo) -> str:
    if field.default_factory is not None:
        value = field.default_factory()  # type: ignore[call-arg]
        if isinstance(value, BaseModel):
            return "(its defaults)"
    elif field.default is PydanticUndefined:
        return "**required**"
    else:
        value = field.default
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, tuple):
        value = list(value)
    text = "null" if value is None else repr(value).replace("'", '"')
    if isinstance(value, bool):
        text = str(value).lower()
    return f"`{text}`"


def _bounds(field: FieldInfo) -> str:
    parts = []
    for item in field.metadata:
        for kind, attribute, template in _BOUNDS:
            if isinstance(item, kind):
                parts.append(template.format(getattr(item, attribute)))
    return ", ".join(parts)


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("``", "`").replace("|", "\\|")


def model_section(model: type[BaseModel], level: int = 3) -> str:
    """One model: its docstring and a table of its fields."""
    docs = attribute_docstrings(model)
    lines = [f"{'#' * level} {model.__name__} {{#{_anchor(model)}}}", ""]
    doc = inspect.getdoc(model)
    if doc and model.__doc__:
        lines += [doc.replace("``", "`"), ""]
    lines += [
        f"`{model.__module__}.{model.__qualname__}`",
        "",
        "| field | type | default | allowed | description |",
        "|---|---|---|---|---|",
    ]
    for name, field in model.model_fields.items():
        description = field.description or docs.get(name, "")
        lines.append(
            f"| `{field.alias or name}` | {type_name(field.annotation)} | {_default(field)} "
            f"| {_bounds(field)} | {_cell(description)} |"
        )
    return "\n".join(lines) + "\n"


def models_page(title: str, intro: str, roots: list[tuple[str, str, type[BaseModel]]]) -> str:
    """A page with one part per root model, each followed by the models nested in it."""
    out = [f"# {title}", "", intro, ""]
    seen: set[type[BaseModel]] = set()
    for heading, text, root in roots:
        out += [f"## {heading}", "", text, ""]
        queue = [root]
        while queue:
            model = queue.pop(0)
            if model in seen:
                continue
            seen.add(model)
            out.append(model_section(model))
            for field in model.model_fields.values():
                queue += [m for m in _models_in(field.annotation) if m not in seen]
    return "\n".join(out)
