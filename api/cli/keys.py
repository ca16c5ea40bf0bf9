"""``storesense keys``: create, list and delete API keys (stored hashed).

Example::

    storesense keys create --scope analyst --name "back office"      # into the store
    storesense keys create --scope display --file keys.json           # into a key file
    storesense keys list
    storesense keys delete k_1a2b3c4d5e6f
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from storesense.api.cli import CLIError
from storesense.api.settings import STORE_URL_ENV
from storesense.api.store import DEFAULT_STORE_URL

if TYPE_CHECKING:
    from storesense.api.store.base import Store


def register(subparsers: Any) -> None:
    from storesense.api.cli import add_command, add_layout_option, add_store_option

    examples = (
        "  storesense keys create --scope admin --layout store.yaml\n"
        "  storesense keys list --store redis://localhost:6379/0 --layout store.yaml\n"
    )
    parser = add_command(
        subparsers,
        "keys",
        examples=examples,
        help="manage API keys",
        description="Create, list and revoke API keys (stored hashed).",
    )
    actions = parser.add_subparsers(dest="keys_action", required=True)

    def store_options(p: argparse.ArgumentParser) -> None:
        add_store_option(p, default=os.environ.get(STORE_URL_ENV) or DEFAULT_STORE_URL)
        add_layout_option(p, required=False)
        p.add_argument(
            "--store-id",
            help="store id when no --layout (default: 'default'; create refuses a store "
            "id without a layout unless --force)",
        )

    create = add_command(
        actions,
        "create",
        examples="  storesense keys create --scope analyst --name 'back office' "
        "--layout store.yaml\n"
        "  storesense keys create --scope display --file keys.json\n",
        help="create a key and print it once",
    )
    create.add_argument(
        "--scope",
        action="append",
        required=True,
        choices=["ingest", "display", "analyst", "admin"],
        help="what the key may do (repeatable)",
    )
    create.add_argument("--name", default=None, help="what the key is for (default: its scopes)")
    create.add_argument(
        "--file", type=Path, help="append to this key file (default: into the store)"
    )
    create.add_argument(
        "--force",
        action="store_true",
        help="without --layout: create the key even if the store id has no layout yet",
    )
    store_options(create)
    create.set_defaults(func=_create)

    listing = add_command(
        actions,
        "list",
        examples="  storesense keys list --layout store.yaml\n",
        help="list keys in the store (never the secrets)",
    )
    store_options(listing)
    listing.set_defaults(func=_list)

    delete = add_command(
        actions,
        "delete",
        examples="  storesense keys delete k_1a2b3c4d5e6f --layout store.yaml\n",
        help="revoke a key in the store",
    )
    delete.add_argument("key_id")
    store_options(delete)
    delete.set_defaults(func=_delete)


@contextmanager
def _open(args: argparse.Namespace) -> Iterator[Store]:
    """The store named by ``--store`` (and ``--layout``/``--store-id``), closed after use;
    a bad URL or a store that cannot be reached is one CLI error line."""
    from storesense.api.cli import load_layout_file
    from storesense.api.store import open_store
    from storesense.api.store.base import StoreUnavailableError

    store_id = args.store_id or "default"
    if args.layout is not None:
        store_id = load_layout_file(args.layout).store.id
    try:
        store = open_store(args.store, store_id)
    except (ValueError, StoreUnavailableError) as exc:
        raise CLIError(f"store {args.store}: {exc}") from None
    try:
        yield store
    except StoreUnavailableError as exc:
        raise CLIError(f"store {args.store}: {exc}") from None
    finally:
        store.close()


def _create(args: argparse.Namespace) -> int:
    from storesense.api.auth import append_key_file, new_key

    name = args.name or "+".join(sorted(set(args.scope)))
    try:
        key, record = new_key(name, args.scope)
    except ValueError as exc:
        raise CLIError(f"--name: {exc}") from None
    if args.file is not None:
        try:
            append_key_file(args.file, record)
        except (OSError, ValueError) as exc:
            raise CLIError(f"{args.file}: {exc}") from None
    else:
        with _open(args) as store:
            if args.layout is None and store.get_layout() is None and not args.force:
                raise CLIError(
                    f"store id {store.store_id!r} in {args.store} has no layout yet (no "
                    "server has run for it): name the store with --layout FILE (its "
                    "store.id) or --store-id ID, or pass --force to create the key anyway"
                )
            store.put_api_key(record)
            where = f"store: {args.store}, store id {store.store_id!r}"
        print(where, file=sys.stderr)
    print(f"key id:  {record.key_id}\nscopes:  {', '.join(sorted(record.scopes))}", file=sys.stderr)
    print("the key (shown only now; store it safely):", file=sys.stderr)
    print(key)
    return 0


def _list(args: argparse.Namespace) -> int:
    with _open(args) as store:
        for record in store.list_api_keys():
            print(f"{record.key_id}\t{','.join(sorted(record.scopes))}\t{record.name}")
    return 0


def _delete(args: argparse.Namespace) -> int:
    with _open(args) as store:
        if not store.delete_api_key(args.key_id):
            raise CLIError(f"unknown key id {args.key_id!r}")
    return 0
