"""One error mapping for every Redis call: "Redis cannot be reached or cannot write now"
becomes :class:`~.base.StoreUnavailableError` (the API answers 503, cameras spool).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import redis
import redis.exceptions
from storesense.api.store.base import StoreUnavailableError

P = ParamSpec("P")
T = TypeVar("T")
R = TypeVar("R")

_UNAVAILABLE_REPLY_PREFIXES = (
    "OOM",
    "LOADING",
    "MASTERDOWN",
    "READONLY",
    "CLUSTERDOWN",
    "TRYAGAIN",
)


def is_unavailable(exc: redis.exceptions.RedisError) -> bool:
    if isinstance(exc, redis.exceptions.ConnectionError | redis.exceptions.TimeoutError):
        return True
    if type(exc).__name__ in {"ClusterDownError", "TryAgainError", "MasterDownError"}:
        return True
    return isinstance(exc, redis.exceptions.ResponseError) and str(exc).startswith(
        _UNAVAILABLE_REPLY_PREFIXES
    )


def redis_errors(method: Callable[P, R]) -> Callable[P, R]:
    """Turn "Redis cannot be reached / cannot write now" into ``StoreUnavailableError``."""

    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(*args, **kwargs)
        except redis.exceptions.RedisError as exc:
            if is_unavailable(exc):
                raise StoreUnavailableError(f"Redis unavailable: {exc}") from exc
            raise
        except OSError as exc:
            raise StoreUnavailableError(f"Redis unavailable: {exc}") from exc

    return wrapper


def map_redis_errors(cls: type[T]) -> type[T]:
    """Class decorator: every public method of a Redis-backed class maps "Redis cannot be
    reached" to ``StoreUnavailableError``, as the store's methods do (the API answers 503,
    not 500)."""
    for name, value in list(vars(cls).items()):
        if inspect.isfunction(value) and not name.startswith("_"):
            setattr(cls, name, redis_errors(value))
    return cls
