"""``storesense models``: list the registered models and fetch them into the cache.

Examples::

    storesense models list
    storesense models fetch                      # yolox-nano from its public URL
    storesense models fetch --all --mirror ../shared/models
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from storesense.api.cli import CLIError
from storesense.models.fetch import FetchError, cache_dir, cached_path, fetch, sha256_of
from storesense.models.registry import DEFAULT_DETECTOR, REGISTRY, UnknownModelError, get_spec


def register(subparsers: Any) -> None:
    from storesense.api.cli import add_command

    parser = add_command(
        subparsers,
        "models",
        examples="  storesense models list\n  storesense models fetch --all --mirror "
        "../shared/models\n",
        help="list or fetch models",
        description="List the registered models, or fetch them into the local cache "
        "(SHA-256 verified).",
    )
    actions = parser.add_subparsers(dest="models_command", required=True)

    listing = add_command(
        actions,
        "list",
        examples="  storesense models list\n",
        help="registered models and whether they are cached",
    )
    listing.set_defaults(func=_list)

    fetching = add_command(
        actions,
        "fetch",
        examples="  storesense models fetch\n  storesense models fetch --all --mirror "
        "../shared/models\n",
        help="download (or copy from a mirror) and verify",
    )
    fetching.add_argument(
        "name", nargs="?", default=None, help=f"model name (default {DEFAULT_DETECTOR})"
    )
    fetching.add_argument("--all", action="store_true", help="fetch every registered model")
    fetching.add_argument(
        "--mirror",
        metavar="DIR",
        default=None,
        help="directory holding the model files "
        "(default: $STORESENSE_MODEL_MIRROR, else the registered URL)",
    )
    fetching.add_argument("--force", action="store_true", help="fetch again even when cached")
    fetching.set_defaults(func=_fetch)


def _is_cached(name: str) -> bool:
    spec = get_spec(name)
    path = cached_path(spec)
    return path.is_file() and sha256_of(path) == spec.sha256


def _list(args: argparse.Namespace) -> int:
    rows = [("NAME", "FORMAT", "INPUT (HxW)", "CACHED")]
    for name in sorted(REGISTRY):
        spec = REGISTRY[name]
        height, width = spec.input_size
        rows.append(
            (name, spec.format.value, f"{height}x{width}", "yes" if _is_cached(name) else "no")
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )
    print(f"cache: {cache_dir() / 'models'}")
    return 0


def _fetch(args: argparse.Namespace) -> int:
    if args.all and args.name:
        raise CLIError("give a model name or --all, not both")
    names = sorted(REGISTRY) if args.all else [args.name or DEFAULT_DETECTOR]
    for name in names:
        try:
            path = fetch(name, mirror=args.mirror, force=args.force)
        except (UnknownModelError, FetchError) as exc:
            raise CLIError(str(exc)) from None
        except OSError as exc:
            raise CLIError(f"cannot write model {name} to the cache: {exc}") from None
        print(f"{name}: {path}", file=sys.stdout)
    return 0
