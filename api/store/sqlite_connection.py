"""The one place SQLite connections are opened: the store, the spool and consent use
:func:`connect_sqlite`, so their pragmas are written once.

Example:
    >>> conn = connect_sqlite(":memory:")
    >>> conn.execute("PRAGMA secure_delete").fetchone()[0], sqlite_pragmas(conn)["busy_timeout"]
    (1, 10000)
    >>> conn.close()
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

SYNCHRONOUS_MODES = ("full", "normal", "extra")
"""``PRAGMA synchronous`` values a store may ask for (``full``: a returned write survives a
power cut)."""
DEFAULT_BUSY_TIMEOUT_MS = 10_000
"""How long a writer waits for another process's lock before ``database is locked``."""
PRAGMA_NAMES = ("journal_mode", "synchronous", "secure_delete", "busy_timeout")


def connect_sqlite(
    path: str | Path,
    *,
    synchronous: str = "full",
    busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS,
) -> sqlite3.Connection:
    """A connection in autocommit mode (``isolation_level=None``: callers ``BEGIN``), usable
    from any thread (callers lock), with WAL (files only), ``synchronous``, ``secure_delete``
    (erased rows are overwritten: privacy) and ``busy_timeout``.

    ``ValueError`` for a bad ``synchronous`` or timeout; ``sqlite3.Error`` when the file
    cannot be opened.
    """
    if synchronous.lower() not in SYNCHRONOUS_MODES:
        raise ValueError(
            f"synchronous must be one of {', '.join(SYNCHRONOUS_MODES)}; got {synchronous!r}"
        )
    if busy_timeout_ms < 0:
        raise ValueError(f"busy_timeout_ms must be >= 0, got {busy_timeout_ms}")
    conn = sqlite3.connect(
        str(path), timeout=busy_timeout_ms / 1000, isolation_level=None, check_same_thread=False
    )
    try:
        if str(path) != ":memory:":
            conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={synchronous.upper()}")
        conn.execute("PRAGMA secure_delete=ON")
        conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
    except sqlite3.Error:
        conn.close()
        raise
    return conn


def sqlite_pragmas(conn: sqlite3.Connection) -> dict[str, object]:
    """The pragmas :func:`connect_sqlite` sets, as the connection reports them."""
    return {name: conn.execute(f"PRAGMA {name}").fetchone()[0] for name in PRAGMA_NAMES}
