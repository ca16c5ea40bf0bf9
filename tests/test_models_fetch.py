"""Model fetch and ``storesense models``: unknown names, tampered mirrors, no network,
cache hits."""

from __future__ import annotations

import dataclasses
import os
import shutil
import socket
from pathlib import Path

import pytest
from storesense.api.cli import main
from storesense.models import registry
from storesense.models.fetch import FetchError, cached_path, fetch, sha256_of
from storesense.models.registry import UnknownModelError, get_spec


@pytest.fixture
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv("STORESENSE_CACHE", str(cache))
    return cache


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_unknown_model_name() -> None:
    with pytest.raises(UnknownModelError, match=r"unknown model 'yolo-huge'.*yolox-nano"):
        fetch("yolo-huge")


def test_fetch_from_mirror_then_cache_hit(own_cache: Path, model_mirror: Path) -> None:
    path = fetch("yolox-nano", mirror=model_mirror)
    assert path == cached_path(get_spec("yolox-nano"))
    assert path.is_relative_to(own_cache)
    assert sha256_of(path) == get_spec("yolox-nano").sha256
    stamp = path.stat().st_mtime_ns
    # A cache hit needs no mirror at all and leaves the file alone.
    assert fetch("yolox-nano", mirror=own_cache / "no-such-mirror") == path
    assert path.stat().st_mtime_ns == stamp


def test_tampered_mirror_file_is_rejected(
    own_cache: Path, model_mirror: Path, tmp_path: Path
) -> None:
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    tampered = mirror / "yolox_nano.onnx"
    shutil.copyfile(model_mirror / "yolox_nano.onnx", tampered)
    with tampered.open("r+b") as handle:
        handle.seek(1000)
        handle.write(b"\x00\x01\x02\x03")
    with pytest.raises(FetchError, match="checksum mismatch for yolox-nano"):
        fetch("yolox-nano", mirror=mirror)
    assert not cached_path(get_spec("yolox-nano")).exists()
    assert not list((own_cache / "models").glob("*.part"))


def test_corrupt_cached_file_is_fetched_again(own_cache: Path, model_mirror: Path) -> None:
    path = fetch("yolox-nano", mirror=model_mirror)
    path.write_bytes(b"truncated")
    assert sha256_of(fetch("yolox-nano", mirror=model_mirror)) == get_spec("yolox-nano").sha256


def test_no_mirror_and_no_network(own_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STORESENSE_MODEL_MIRROR", raising=False)
    spec = dataclasses.replace(
        get_spec("yolox-nano"), url=f"http://127.0.0.1:{_closed_port()}/yolox_nano.onnx"
    )
    monkeypatch.setitem(registry.REGISTRY, "yolox-nano", spec)
    with pytest.raises(FetchError, match=r"cannot download yolox-nano.*--mirror") as raised:
        fetch("yolox-nano", timeout=5)
    assert "\n" not in str(raised.value)
    assert main(["models", "fetch"]) == 2


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["models", "fetch", "yolo-huge"], "unknown model 'yolo-huge'"),
        (["models", "fetch", "--mirror", "/no/such/dir"], "is not a directory"),
        (["models", "fetch", "yolox-nano", "--all"], "not both"),
    ],
)
def test_models_fetch_cli_errors_are_one_line(
    own_cache: Path, argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_models_cli_fetch_all_and_list(
    own_cache: Path, model_mirror: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["models", "list"]) == 0
    before = capsys.readouterr().out.splitlines()
    assert before[0].split() == ["NAME", "FORMAT", "INPUT", "(HxW)", "CACHED"]
    assert any(line.split() == ["yolox-nano", "yolox", "416x416", "no"] for line in before)
    assert main(["models", "fetch", "--all", "--mirror", os.fspath(model_mirror)]) == 0
    fetched = capsys.readouterr().out
    assert "person-reid-0248:" in fetched and "yolox-nano:" in fetched
    assert main(["models", "list"]) == 0
    after = capsys.readouterr().out.splitlines()
    assert any(line.split() == ["yolox-nano", "yolox", "416x416", "yes"] for line in after)
    assert any(line.split() == ["person-reid-0248", "reid", "256x128", "yes"] for line in after)
