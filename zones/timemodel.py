"""The one time model: every timestamp, range, bucket, frame rate and count a client sends.

Every time the service accepts (query ``from``/``to``, transactions, check-ins,
``X-Capture-Time``, a layout's ``start_time`` and ``fps``) goes through this module, so
each is read the same way and bounded the same way (docs/reference/time-model.md):

- **Format**: Unix seconds (a number or a numeric string, UTC) or ISO 8601
  (``2024-05-01T10:00:00Z``, an offset, or naive = UTC).
- **Finite**: ``nan``, ``inf`` and the like are refused.
- **Inside a sane window**: a moment that *happened* (a capture time, a check-in, a
  transaction bucket, a layout ``start_time``) lies between :data:`EARLIEST`
  (2000-01-01T00:00:00Z) and now + :data:`HAPPENED_AHEAD_S` (one day of clock skew);
  a pushed frame's capture time at most :data:`CAPTURE_AHEAD_S` ahead of the server
  clock (a frame from the future would make every later frame look late). Query bounds
  lie between :data:`EARLIEST` and now + :data:`QUERY_AHEAD_S` (a year).
- **Ranges** last at most :data:`MAX_RANGE_S` (ten years); **buckets** are 1 s to
  :data:`MAX_BUCKET_S` (one year); **frame rates** are :data:`MIN_FPS` to :data:`MAX_FPS`;
  **counts** are whole numbers from 0 to :data:`MAX_COUNT`.

Everything refused raises ``ValueError`` with a message that names the value, the
rule and an example; the API answers it with 422.

Example:
    >>> parse_timestamp("2024-05-01T10:00:00Z", now=1_800_000_000.0)
    1714557600.0
    >>> parse_timestamp("nan")
    Traceback (most recent call last):
    ValueError: time: 'nan' is not a finite time: give Unix seconds or ISO 8601 (e.g. ...)
"""

from __future__ import annotations

import math
import re
import time
from datetime import UTC, datetime, timedelta

from storesense.vision.frames import MAX_FPS, MIN_FPS

EARLIEST = 946_684_800.0
"""2000-01-01T00:00:00Z: nothing this service counts happened before."""
HAPPENED_AHEAD_S = 86_400.0
"""Something that happened may be stamped at most a day ahead of the server clock."""
CAPTURE_AHEAD_S = 60.0
"""A pushed frame may be stamped at most this far ahead of the server clock."""
QUERY_AHEAD_S = 366 * 86_400.0
"""Query bounds may reach a year ahead (e.g. ``to`` = the end of this year)."""
MAX_RANGE_S = 3_653 * 86_400.0
"""The longest query range: ten years."""
MIN_BUCKET_S = 1
MAX_BUCKET_S = 366 * 86_400
MAX_COUNT = 1_000_000_000
"""The largest count a client may send (e.g. transactions in one bucket)."""

_BUCKET = re.compile(r"^(\d{1,12})\s*([smhd])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_EXAMPLE = "give Unix seconds or ISO 8601 (e.g. 2024-05-01T10:00:00Z)"


def iso(seconds: float) -> str:
    """``1714557600.0`` → ``2024-05-01T10:00:00Z`` (for messages).

    >>> iso(946684800.0)
    '2000-01-01T00:00:00Z'
    """
    return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")


def to_unix(value: object) -> float:
    """Unix seconds from a number, a numeric string, ISO 8601 text or a ``datetime``
    (naive = UTC); finite, but not yet inside any window.

    >>> to_unix(1714557600), to_unix("1714557600.5"), to_unix("2024-05-01T12:00:00+02:00")
    (1714557600.0, 1714557600.5, 1714557600.0)
    """
    if isinstance(value, bool):
        raise ValueError(f"expected a time, got a boolean: {_EXAMPLE}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, datetime):
        seconds = _from_datetime(value)
    elif isinstance(value, str):
        text = value.strip()
        try:
            seconds = float(text)
        except ValueError:
            try:
                moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
            except ValueError:
                raise ValueError(
                    f"{value!r} is neither Unix seconds nor ISO 8601: {_EXAMPLE}"
                ) from None
            seconds = _from_datetime(moment)
    else:
        raise ValueError(f"expected a time, got {type(value).__name__}: {_EXAMPLE}")
    if not math.isfinite(seconds):
        raise ValueError(f"{value!r} is not a finite time: {_EXAMPLE}")
    return seconds


def _from_datetime(moment: datetime) -> float:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        return moment.timestamp()
    except (OverflowError, ValueError, OSError):  # year 1 with a positive offset, etc.
        raise ValueError(f"{moment.isoformat()} is outside the supported years") from None


def parse_timestamp(
    value: object,
    *,
    what: str = "time",
    ahead_s: float = HAPPENED_AHEAD_S,
    now: float | None = None,
) -> float:
    """A moment in Unix seconds, finite and between 2000-01-01 and ``now + ahead_s``.

    ``what`` names the value in the message (``X-Capture-Time``, ``from``…).

    >>> parse_timestamp(1714557600, now=1_800_000_000.0)
    1714557600.0
    >>> parse_timestamp("0001-01-01T00:00:00", what="from", now=1_800_000_000.0)
    Traceback (most recent call last):
    ValueError: from 0001-01-01T00:00:00 is before 2000-01-01T00:00:00Z: ...
    """
    try:
        seconds = to_unix(value)
    except ValueError as exc:
        raise ValueError(f"{what}: {exc}") from None
    latest = (time.time() if now is None else now) + ahead_s
    if seconds < EARLIEST:
        shown = _shown(value, seconds)
        raise ValueError(f"{what} {shown} is before {iso(EARLIEST)}: {_EXAMPLE}")
    if seconds > latest:
        raise ValueError(
            f"{what} {_shown(value, seconds)} is more than {_duration(ahead_s)} ahead of the "
            f"server clock ({iso(latest - ahead_s)}): {_EXAMPLE}"
        )
    return seconds


def _shown(value: object, seconds: float) -> str:
    if isinstance(value, str):
        return value.strip()
    if abs(seconds) < 1e11:
        return f"{seconds:g} ({iso(seconds)})" if seconds >= -62e9 else f"{seconds:g}"
    return f"{seconds:g}"


def _duration(seconds: float) -> str:
    for unit, size in (("days", 86_400), ("h", 3600), ("s", 1)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g} {unit}"
    return f"{seconds:g} s"


def parse_capture_time(value: object, *, now: float | None = None) -> float:
    """A pushed frame's capture time: at most :data:`CAPTURE_AHEAD_S` ahead of ``now``.

    >>> parse_capture_time("4102444800", now=1_800_000_000.0)
    Traceback (most recent call last):
    ValueError: X-Capture-Time 4102444800 is more than 60 s ahead of the server clock ...
    """
    return parse_timestamp(value, what="X-Capture-Time", ahead_s=CAPTURE_AHEAD_S, now=now)


def parse_range(start: object, end: object, *, now: float | None = None) -> tuple[float, float]:
    """Validated query bounds ``[start, end)``: each a query time, ``end`` after ``start``,
    at most :data:`MAX_RANGE_S` apart.

    >>> parse_range("2024-05-01", "2024-05-02", now=1_800_000_000.0)
    (1714521600.0, 1714608000.0)
    """
    begin = parse_timestamp(start, what="'from'", ahead_s=QUERY_AHEAD_S, now=now)
    finish = parse_timestamp(end, what="'to'", ahead_s=QUERY_AHEAD_S, now=now)
    check_range(begin, finish)
    return begin, finish


def check_range(start: float, end: float) -> None:
    """``end`` after ``start`` and at most ten years later, else ``ValueError``."""
    if not end > start:
        raise ValueError(f"'to' ({iso(end)}) must be after 'from' ({iso(start)})")
    if end - start > MAX_RANGE_S:
        raise ValueError(
            f"'from' {iso(start)} to 'to' {iso(end)} spans more than "
            f"{MAX_RANGE_S / 86_400 / 365.25:.0f} years: ask for a shorter range"
        )


def parse_bucket(text: str) -> timedelta:
    """A bucket size: a positive whole number and a unit s/m/h/d, at most a year.

    >>> parse_bucket("15m"), parse_bucket("1d")
    (datetime.timedelta(seconds=900), datetime.timedelta(days=1))
    >>> parse_bucket("99999999999d")
    Traceback (most recent call last):
    ValueError: bucket '99999999999d' is longer than 366 days: e.g. 15m, 1h, 1d
    """
    match = _BUCKET.match(text.strip().lower())
    if not match or int(match.group(1)) == 0:
        raise ValueError(f"bucket {text!r} must be a positive number and a unit s/m/h/d, e.g. 15m")
    seconds = int(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if seconds > MAX_BUCKET_S:
        raise ValueError(f"bucket {text!r} is longer than 366 days: e.g. 15m, 1h, 1d")
    return timedelta(seconds=seconds)


def check_fps(fps: float) -> float:
    """A frame rate between :data:`MIN_FPS` and :data:`MAX_FPS`.

    >>> check_fps(7.0)
    7.0
    >>> check_fps(1e-300)
    Traceback (most recent call last):
    ValueError: fps 1e-300 is outside 0.01 to 1000 frames per second
    """
    if not (isinstance(fps, int | float) and math.isfinite(fps) and MIN_FPS <= fps <= MAX_FPS):
        raise ValueError(f"fps {fps:g} is outside {MIN_FPS:g} to {MAX_FPS:g} frames per second")
    return float(fps)


def check_count(count: object, *, what: str = "count") -> int:
    """A whole, non-negative count up to :data:`MAX_COUNT` (``12.0`` is 12; ``1e23`` is not).

    >>> check_count(12.0)
    12
    >>> check_count(1e23)
    Traceback (most recent call last):
    ValueError: count 1e+23 must be a whole number from 0 to 1000000000
    """
    problem = ValueError(f"{what} {count!r:.40} must be a whole number from 0 to {MAX_COUNT}")
    if isinstance(count, bool) or not isinstance(count, int | float):
        raise problem
    if isinstance(count, float) and not (math.isfinite(count) and count.is_integer()):
        raise problem
    if not 0 <= count <= MAX_COUNT:
        raise problem
    return int(count)
