"""Fetch a registered model from a local mirror or its public URL, verifying SHA-256."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from storesense.models.registry import ModelSpec, get_spec

MIRROR_ENV = "STORESENSE_MODEL_MIRROR"
CACHE_ENV = "STORESENSE_CACHE"


class FetchError(RuntimeError):
    """A model could not be fetched; the message is one line a user can act on."""


def cache_dir() -> Path:
    """``$STORESENSE_CACHE``, else ``$XDG_CACHE_HOME/storesense``, else ``~/.cache/storesense``."""
    if env := os.environ.get(CACHE_ENV):
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "storesense"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def cached_path(spec: ModelSpec) -> Path:
    return cache_dir() / "models" / spec.filename


def _verify(path: Path, spec: ModelSpec, origin: str) -> None:
    actual = sha256_of(path)
    if actual != spec.sha256:
        path.unlink(missing_ok=True)
        raise FetchError(
            f"checksum mismatch for {spec.name} from {origin}: "
            f"expected sha256 {spec.sha256}, got {actual}"
        )


def fetch(
    name: str,
    mirror: str | os.PathLike[str] | None = None,
    *,
    force: bool = False,
    timeout: float = 60.0,
) -> Path:
    """Return the local path of model ``name``, fetching and verifying it if needed.

    ``mirror`` (or ``$STORESENSE_MODEL_MIRROR``) is a directory holding the
    model files under their registry filenames; without one the public URL is
    used. A cached file is re-verified before it is trusted.
    """
    spec = get_spec(name)
    target = cached_path(spec)
    if target.exists() and not force:
        if sha256_of(target) == spec.sha256:
            return target
        target.unlink()
    target.parent.mkdir(parents=True, exist_ok=True)
    mirror = mirror if mirror is not None else os.environ.get(MIRROR_ENV) or None
    with tempfile.NamedTemporaryFile(dir=target.parent, delete=False, suffix=".part") as tmp:
        tmp_path = Path(tmp.name)
    try:
        if mirror is not None:
            source = Path(mirror) / spec.filename
            if not Path(mirror).is_dir():
                raise FetchError(f"model mirror {mirror} is not a directory")
            if not source.is_file():
                raise FetchError(f"model mirror {mirror} has no {spec.filename} for {spec.name}")
            shutil.copyfile(source, tmp_path)
            origin = str(source)
        else:
            origin = spec.url
            try:
                with (
                    urllib.request.urlopen(spec.url, timeout=timeout) as response,
                    tmp_path.open("wb") as out,
                ):
                    shutil.copyfileobj(response, out)
            except (urllib.error.URLError, OSError) as exc:
                reason = getattr(exc, "reason", exc)
                raise FetchError(
                    f"cannot download {spec.name} from {spec.url} ({reason}); "
                    f"no network? pass --mirror DIR or set {MIRROR_ENV}"
                ) from None
        _verify(tmp_path, spec, origin)
        os.replace(tmp_path, target)
    finally:
        tmp_path.unlink(missing_ok=True)
    return target
