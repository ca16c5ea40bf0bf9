"""Settings from flags, environment and file; the CLI's shared options, help and errors;
the one store URL parser and the one SQLite connection factory."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from fixtures_redis import free_port
from pydantic import ValidationError
from service_helpers import layout_dict
from storesense.api.cli import HelpFormatter, build_parser, main, package_version
from storesense.api.settings import ServiceSettings, read_settings_file
from storesense.api.store import open_store
from storesense.api.store.base import StoreUnavailableError
from storesense.api.store.redis import RedisStore
from storesense.api.store.spool import SpoolingStore
from storesense.api.store.sqlite import SQLiteStore
from storesense.api.store.sqlite_connection import connect_sqlite, sqlite_pragmas
from storesense.api.store.url import is_redis_url, parse_store_url
from storesense.vision.detector import _network_input_size

pytest_plugins = ["service_helpers"]


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No STORESENSE_ setting of the machine leaks into these tests (the model mirror stays)."""
    for name in list(os.environ):
        if name.startswith("STORESENSE_") and name != "STORESENSE_MODEL_MIRROR":
            monkeypatch.delenv(name)


@pytest.fixture()
def layout_file(tmp_path: Path) -> Path:
    path = tmp_path / "layout.yaml"
    path.write_text(yaml.safe_dump(layout_dict("structshop")))
    return path


# --------------------------------------------------------------------- settings
def _write_settings(path: Path, values: dict[str, Any]) -> Path:
    if path.suffix == ".toml":
        path.write_text("".join(f"{k} = {json.dumps(v)}\n" for k, v in values.items()))
    else:
        path.write_text(yaml.safe_dump(values))
    return path


@pytest.mark.parametrize(
    ("flags", "env", "file", "expected_port", "expected_store"),
    [
        ({}, {}, None, 8000, "sqlite:///storesense.db"),
        ({}, {}, {"port": 8100, "store": "redis://f:1/0"}, 8100, "redis://f:1/0"),
        ({}, {"STORESENSE_PORT": "8200"}, {"port": 8100}, 8200, "sqlite:///storesense.db"),
        ({"port": 8300}, {"STORESENSE_PORT": "8200"}, {"port": 8100}, 8300, None),
        (
            {},
            {"STORESENSE_STORE": "redis://env:2/0"},
            {"store_url": "redis://f:1/0"},
            8000,
            "redis://env:2/0",
        ),
        (
            {"store_url": "sqlite:///flag.db"},
            {"STORESENSE_STORE": "redis://env:2/0"},
            None,
            8000,
            "sqlite:///flag.db",
        ),
        ({}, {"STORESENSE_STORE_URL": "redis://long:3/0"}, None, 8000, "redis://long:3/0"),
    ],
)
@pytest.mark.parametrize("suffix", [".yaml", ".toml"])
def test_settings_take_flags_then_environment_then_file_then_defaults(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    flags: dict[str, Any],
    env: dict[str, str],
    file: dict[str, Any] | None,
    expected_port: int,
    expected_store: str | None,
    suffix: str,
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    config = _write_settings(tmp_path / f"settings{suffix}", file) if file else None
    settings = ServiceSettings.load(flags, config)
    assert settings.port == expected_port
    if expected_store is not None:
        assert settings.store_url == expected_store
    if config is not None:  # the same file named by STORESENSE_CONFIG gives the same result
        monkeypatch.setenv("STORESENSE_CONFIG", str(config))
        assert ServiceSettings.load(flags) == settings


def test_nested_settings_from_environment_and_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _write_settings(tmp_path / "s.yaml", {"backoff": {"initial_s": 2.0, "max_s": 9.0}})
    monkeypatch.setenv("STORESENSE_BACKOFF__MAX_S", "30")
    settings = ServiceSettings.load({}, config)
    # Nested values merge field by field: max_s from the environment, initial_s from the file.
    assert (settings.backoff.initial_s, settings.backoff.max_s) == (2.0, 30.0)


@pytest.mark.parametrize(
    ("content", "suffix", "message"),
    [
        ("- a\n- b\n", ".yaml", "must be a mapping"),
        ("port: [1\n", ".yaml", "settings file"),
        ("port = \n", ".toml", "settings file"),
    ],
)
def test_bad_settings_files_are_one_line_errors(
    tmp_path: Path, content: str, suffix: str, message: str
) -> None:
    path = tmp_path / f"bad{suffix}"
    path.write_text(content)
    with pytest.raises(ValueError, match=message) as caught:
        read_settings_file(path)
    assert "\n" not in str(caught.value)


def test_unknown_setting_in_a_file_is_rejected(tmp_path: Path) -> None:
    config = _write_settings(tmp_path / "s.yaml", {"prot": 9000})
    with pytest.raises(ValidationError, match="prot"):
        ServiceSettings.load({}, config)


def test_serve_reads_its_settings_file_and_names_a_missing_one(
    layout_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _write_settings(tmp_path / "s.toml", {"host": "0.0.0.0"})
    store = f"sqlite:///{tmp_path / 's.db'}"
    assert main(["serve", "--layout", str(layout_file), "--store", store, "--config", str(config)])
    assert "refusing to serve on 0.0.0.0" in capsys.readouterr().err
    missing = tmp_path / "nope.yaml"
    assert main(["serve", "--layout", str(layout_file), "--config", str(missing)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"settings file {missing}: cannot read it" in err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--provider", "warp-drive"], "provider: unknown execution provider 'warp-drive'"),
        (["--model", "MISSING/model.onnx"], "neither a registered detector"),
        (["--model", "person-reid-0248"], "is not a detector"),
        (["--input-size", "8"], "input_size: Input should be greater than or equal to 32"),
    ],
)
def test_serve_detector_options_are_validated_in_one_line(
    layout_file: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    assert main(["serve", "--layout", str(layout_file), *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and err.count("\n") == 1


@pytest.mark.parametrize(
    ("provider", "expected"),
    [
        ("cpu", ["CPUExecutionProvider"]),
        ("cuda", ["CUDAExecutionProvider", "CPUExecutionProvider"]),
        ("auto", "auto"),
        ("OpenVINOExecutionProvider", ["OpenVINOExecutionProvider"]),
    ],
)
def test_serve_accepts_a_model_path_and_any_known_provider(
    tmp_path: Path, provider: str, expected: list[str] | str
) -> None:
    model = tmp_path / "detector.onnx"
    model.write_bytes(b"not checked until it is loaded")
    settings = ServiceSettings(model=str(model), provider=provider, input_size=640)
    assert settings.execution_providers() == expected
    assert (settings.model, settings.input_size) == (str(model), 640)


@pytest.mark.parametrize(
    ("shape", "requested", "expected"),
    [
        ([1, 3, 416, 416], None, (416, 416)),
        ([1, 3, 416, 416], 416, (416, 416)),
        (["n", 3, "h", "w"], 640, (640, 640)),
        ([1, 3, 416, 416], 640, "fixed 416x416 input, not input size 640"),
        (["n", 3, "h", "w"], None, "give input_size"),
        (["n", 3, "h", "w"], 100, "multiple of 32"),
    ],
)
def test_detector_input_size(
    shape: list[object], requested: int | None, expected: tuple[int, int] | str
) -> None:
    if isinstance(expected, str):
        with pytest.raises(ValueError, match=expected):
            _network_input_size(shape, requested)
    else:
        assert _network_input_size(shape, requested) == expected


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--input-size", "640"], "--model yolox-nano: the model takes a fixed 416x416 input"),
        (["--provider", "TensorrtExecutionProvider"], "not available"),
    ],
)
def test_serve_detector_that_cannot_load_is_a_one_line_error(
    layout_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    message: str,
) -> None:
    """The real model (from the mirror) with a size or provider this machine cannot give."""
    import onnxruntime as ort

    if "TensorrtExecutionProvider" in extra and "TensorrtExecutionProvider" in (
        ort.get_available_providers()
    ):
        extra = ["--provider", "cuda", "--input-size", "320"]
        message = "fixed 416x416 input"
    store = f"sqlite:///{tmp_path / 's.db'}"
    args = ["serve", "--layout", str(layout_file), "--store", store, "--no-api", *extra]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and err.count("\n") == 1


def test_serve_takes_the_store_from_the_environment(
    layout_file: Path, tmp_path: Path, redis_url: str
) -> None:
    """``STORESENSE_STORE=redis://… storesense serve --layout …``: a real server on Redis."""
    port = free_port()
    env = {**os.environ, "STORESENSE_STORE": redis_url}
    cli = "import sys; from storesense.api.cli import main; sys.exit(main())"
    args = ["serve", "--layout", str(layout_file), "--no-workers", "--port", str(port)]
    process = subprocess.Popen(
        [sys.executable, "-c", cli, *args],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        ready = None
        while time.monotonic() < deadline and process.poll() is None:
            try:
                ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        assert ready is not None and ready.status_code == 200, process.poll()
    finally:
        process.terminate()
        _, err = process.communicate(timeout=30)
    store = RedisStore.from_url(redis_url, "structshop")
    try:
        layout = store.get_layout()
        assert layout is not None and json.loads(layout)["store"]["id"] == "structshop"
    finally:
        store.close()
    assert "Traceback" not in err


# --------------------------------------------------------------------- CLI
def _parsers(
    parser: argparse.ArgumentParser, name: str = "storesense"
) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                yield from _parsers(sub, f"{name} {sub_name}")


COMMANDS = [name for name, _ in _parsers(build_parser())]


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_code:
        main(["--version"])
    assert exit_code.value.code == 0
    assert capsys.readouterr().out.strip() == f"storesense {package_version()}"
    assert package_version()[0].isdigit()


@pytest.mark.parametrize("command", COMMANDS)
def test_every_help_shows_defaults_and_an_example(command: str) -> None:
    parser = dict(_parsers(build_parser()))[command]
    assert parser.formatter_class is HelpFormatter
    text = parser.format_help()
    assert "\nexamples:\n  storesense " in text
    formatter = HelpFormatter(parser.prog)
    for action in parser._actions:
        if not action.option_strings or action.required:
            continue
        if isinstance(action, argparse._HelpAction | argparse._VersionAction):
            continue
        assert "default" in formatter._get_help_string(action), (command, action.dest)


def test_camera_means_a_layout_camera_id_in_every_command() -> None:
    helps = {
        name: action.help
        for name, parser in _parsers(build_parser())
        for action in parser._actions
        if "--camera" in action.option_strings
    }
    assert set(helps) == {"storesense track", "storesense count", "storesense serve"}
    assert all("a camera id: cameras[].id of the layout" in str(h) for h in helps.values())


def _bad_layouts(tmp_path: Path) -> dict[str, Path]:
    broken = layout_dict("structshop")
    broken["zones"][1]["polygon"] = [[0, 0], [1, 1]]
    broken["zones"][0]["kind"] = "aisle-of-dreams"
    files = {
        "fields": tmp_path / "fields.yaml",
        "syntax": tmp_path / "syntax.yaml",
        "missing": tmp_path / "missing.yaml",
    }
    files["fields"].write_text(yaml.safe_dump(broken))
    files["syntax"].write_text("store: {id: [\n")
    return files


@pytest.mark.parametrize("problem", ["fields", "syntax", "missing"])
def test_layout_errors_read_the_same_in_count_serve_and_keys(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], problem: str
) -> None:
    path = _bad_layouts(tmp_path)[problem]
    store = f"sqlite:///{tmp_path / 's.db'}"
    outputs = {}
    for command in (
        ["count", "video.mp4", "--layout", str(path)],
        ["serve", "--layout", str(path), "--store", store],
        ["keys", "list", "--layout", str(path), "--store", store],
        ["keys", "create", "--scope", "admin", "--layout", str(path), "--store", store],
    ):
        assert main(command) == 2
        outputs[command[0] + command[1]] = capsys.readouterr().err
    first = next(iter(outputs.values()))
    assert all(err == first for err in outputs.values()), outputs
    lines = first.splitlines()
    assert lines and all(
        line.startswith(f"storesense: error: layout {path}: ") for line in lines
    ), lines
    assert "Traceback" not in first
    if problem == "fields":
        prefix = f"storesense: error: layout {path}: "
        fields = {line.removeprefix(prefix).split(": ")[0] for line in lines}
        assert fields >= {"zones[0].kind", "zones[1].polygon"}


def test_demo_installs_the_runtime_only_and_the_tests_everything() -> None:
    scripts = Path(__file__).resolve().parents[1] / "scripts"
    assert "scripts/setup --runtime" in (scripts / "demo").read_text()
    assert "scripts/setup\n" in (scripts / "test").read_text()
    setup = (scripts / "setup").read_text()
    assert "target=." in setup and "target='.[dev,bench]'" in setup


# --------------------------------------------------------------------- store URLs
@pytest.mark.parametrize(
    ("url", "backend", "path", "options"),
    [
        ("sqlite:///storesense.db", "sqlite", "storesense.db", {}),
        ("sqlite:////var/lib/s.db", "sqlite", "/var/lib/s.db", {}),
        ("sqlite://:memory:", "sqlite", ":memory:", {}),
        ("SQLITE:///x.db?synchronous=normal", "sqlite", "x.db", {"synchronous": "normal"}),
        ("redis://localhost:6379/0", "redis", None, {}),
        ("rediss://user:pw@host:6380/1", "redis", None, {}),
        ("unix:///run/redis.sock", "redis", None, {}),
        ("redis+cluster://node:7000", "redis", None, {}),
        ("rediss+cluster://node:7000", "redis", None, {}),
    ],
)
def test_store_url_parser_accepts(
    url: str, backend: str, path: str | None, options: dict[str, str]
) -> None:
    parsed = parse_store_url(url)
    assert (parsed.backend, parsed.path, parsed.options) == (backend, path, options)
    assert is_redis_url(url) is (backend == "redis")
    assert ServiceSettings(store_url=url).store_url == url


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("storesense.db", "has no scheme"),
        ("sqlite://", "names no database file"),
        ("sqlite:///x.db?journal=off", "unknown SQLite store option"),
        ("redis://", "names no Redis host"),
        ("ftp://x", "unknown store URL scheme 'ftp'"),
    ],
)
def test_store_url_parser_rejects_the_same_way_everywhere(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as parsed:
        parse_store_url(url)
    with pytest.raises(ValueError, match=message) as opened:
        open_store(url, "s1")
    with pytest.raises(ValidationError, match=message):
        ServiceSettings(store_url=url)
    assert str(parsed.value) == str(opened.value)
    assert not is_redis_url(url)


# --------------------------------------------------------------------- SQLite
def test_sqlite_pragmas_are_the_same_for_store_and_spool(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "store.db", "s1")
    spooled = SpoolingStore(SQLiteStore(tmp_path / "primary.db", "s1"), tmp_path / "spool.db")
    try:
        seen = {
            "store": sqlite_pragmas(store._connection()),
            "spool": sqlite_pragmas(spooled._spool),
        }
    finally:
        store.close()
        spooled.close()
    expected = {"journal_mode": "wal", "synchronous": 2, "secure_delete": 1, "busy_timeout": 10000}
    assert seen == dict.fromkeys(seen, expected)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"synchronous": "off"}, "synchronous must be one of"), ({"busy_timeout_ms": -1}, ">= 0")],
)
def test_sqlite_connection_factory_rejects_bad_options(
    kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        connect_sqlite(":memory:", **kwargs)


def test_consent_on_a_stopped_redis_is_store_unavailable(new_redis_server: Any) -> None:
    server = new_redis_server()
    store = open_store(server.url + "?socket_timeout=0.5", "s1")
    assert store.consents("member-1") == []
    server.stop()
    with pytest.raises(StoreUnavailableError):
        store.consents("member-1")
    with pytest.raises(StoreUnavailableError):
        store.erase_member("member-1")
    store.close()
