"""``storesense`` command line: one sub-command module per domain.

Options shared by several commands are defined here once: ``--layout`` and ``--store``
(:func:`add_layout_option`, :func:`add_store_option`), ``--camera ID`` (always a camera id,
``cameras[].id`` of the layout: :data:`CAMERA_HELP`), and one error format for a layout
that cannot be used (:func:`load_layout_file`): ``layout FILE: path: message`` lines, exit 2.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from storesense.zones.config import StoreLayout

# Each module defines ``register(subparsers)``; the parser it adds sets ``func``.
_COMMAND_MODULES = ("models", "track", "count", "serve", "keys")


CAMERA_HELP = "a camera id: cameras[].id of the layout"
"""What ``--camera ID`` means in every command."""


class CLIError(Exception):
    """A user-facing error: printed as one line (a layout error: one line per problem),
    exit status 2."""


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default (unless its help already says it) and keeps the
    examples of the epilog as written."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if text.startswith("examples:"):
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text.lower() or not action.option_strings or action.required:
            return text
        if isinstance(action, argparse._HelpAction | argparse._VersionAction):
            return text
        if action.default is False or (action.default is None and action.nargs == 0):
            return text + " (default: off)"
        if action.default in (None, argparse.SUPPRESS, ""):
            return text + " (default: none)"
        return text + " (default: %(default)s)"


def add_command(subparsers: Any, name: str, *, examples: str, **kwargs: Any) -> Any:
    """A sub-command parser with :class:`HelpFormatter` and ``examples`` as its epilog."""
    return subparsers.add_parser(
        name, formatter_class=HelpFormatter, epilog="examples:\n" + examples, **kwargs
    )


def add_layout_option(parser: argparse.ArgumentParser, *, required: bool = True) -> None:
    """``--layout FILE``: the store layout (YAML or JSON), the store's own file."""
    parser.add_argument(
        "--layout",
        required=required,
        type=Path,
        metavar="FILE",
        help="store layout YAML/JSON (cameras, zones, lines; see docs/guides)",
    )


def add_store_option(parser: argparse.ArgumentParser, default: Any = None) -> None:
    """``--store URL``: where events, keys and the layout are kept."""
    from storesense.api.store import DEFAULT_STORE_URL

    parser.add_argument(
        "--store",
        default=DEFAULT_STORE_URL if default is None else default,
        metavar="URL",
        help="sqlite:///FILE, sqlite://:memory: or redis://HOST:PORT/DB "
        f"(default: $STORESENSE_STORE or {DEFAULT_STORE_URL})",
    )


def add_frame_rate_options(parser: argparse.ArgumentParser) -> None:
    """``--fps`` (the source's real frame rate) and ``--sample-fps`` (process at most N a
    second), shared by the commands that read a video."""
    parser.add_argument(
        "--fps",
        type=float,
        default=None,
        help="the source's real frame rate (default: the container's)",
    )
    parser.add_argument(
        "--sample-fps",
        type=float,
        default=None,
        metavar="N",
        help="process at most N frames a second (default: every frame)",
    )


def load_layout_file(path: Path) -> StoreLayout:
    """The layout in ``path``; a :class:`CLIError` of ``layout FILE: path: message`` lines."""
    from storesense.zones.config import LayoutError, load_layout

    try:
        return load_layout(path)
    except LayoutError as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        prefix = f"{path}: "
        raise CLIError(
            "\n".join(f"layout {path}: {line.removeprefix(prefix)}" for line in lines)
        ) from None


def package_version() -> str:
    try:
        return version("storesense")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="storesense",
        description="Anonymous in-store analytics from camera video.",
        formatter_class=HelpFormatter,
        epilog="examples:\n  storesense count video.mp4 --layout store.yaml\n"
        "  storesense serve --layout store.yaml\n  storesense COMMAND --help",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--version", action="version", version=f"storesense {package_version()}")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in _COMMAND_MODULES:
        module = importlib.import_module(f"storesense.api.cli.{name}")
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args) or 0)
    except CLIError as exc:
        for line in str(exc).splitlines() or [""]:
            print(f"storesense: error: {line}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
