"""``storesense serve`` start-up checks and ``storesense keys``."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import yaml
from service_helpers import layout_dict
from storesense.api.auth import hash_key, load_key_file
from storesense.api.cli import main
from storesense.api.store import open_store

pytest_plugins = ["service_helpers"]


@pytest.fixture()
def layout_file(tmp_path: Path) -> Path:
    path = tmp_path / "layout.yaml"
    path.write_text(yaml.safe_dump(layout_dict("clishop")))
    return path


def test_serve_refuses_public_host_without_keys(
    layout_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = f"sqlite:///{tmp_path / 's.db'}"
    code = main(["serve", "--layout", str(layout_file), "--store", store, "--host", "0.0.0.0"])
    assert code == 2
    assert "refusing to serve on 0.0.0.0 with no API keys" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--store", "ftp://x"], "store_url"),
        (["--no-api", "--no-workers"], "nothing to run"),
        (["--api-keys", "MISSINGDIR/keys.json", "--store", "sqlite:///nodir/x.db"], "store"),
        (
            ["--camera", "cam1", "--camera", "till"],
            "--camera: camera(s) till not in the layout (its cameras: cam1)",
        ),
        (["--camera", "cam1", "--no-workers"], "drop --no-workers"),
    ],
)
def test_serve_bad_options_are_one_line_errors(
    layout_file: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    assert main(["serve", "--layout", str(layout_file), *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and err.count("\n") == 1


def test_serve_on_a_port_in_use_is_a_one_line_error(
    layout_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        store = f"sqlite:///{tmp_path / 's.db'}"
        args = ["serve", "--layout", str(layout_file), "--store", store, "--port", port]
        assert main(args) == 2
    err = capsys.readouterr().err
    assert f"cannot listen on 127.0.0.1:{port}" in err and "Traceback" not in err


def test_serve_bad_layout_names_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = layout_dict("clishop")
    broken["zones"][1]["polygon"] = [[0, 0], [1, 1]]
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(broken))
    assert main(["serve", "--layout", str(path)]) == 2
    assert "zones[1].polygon" in capsys.readouterr().err


def test_keys_create_prints_the_key_once_and_stores_its_hash(
    layout_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'k.db'}"
    create = ["keys", "create", "--scope", "analyst", "--store", url, "--layout", str(layout_file)]
    assert main(create) == 0
    key = capsys.readouterr().out.strip()
    assert key.startswith("ss_") and len(key) > 40
    store = open_store(url, "clishop")
    try:
        (record,) = store.list_api_keys()
        assert record.key_hash == hash_key(key) and record.scopes == {"analyst"}
    finally:
        store.close()
    assert main(["keys", "list", "--store", url, "--layout", str(layout_file)]) == 0
    listed = capsys.readouterr().out
    assert record.key_id in listed and key not in listed
    assert (
        main(["keys", "delete", record.key_id, "--store", url, "--layout", str(layout_file)]) == 0
    )
    assert (
        main(["keys", "delete", record.key_id, "--store", url, "--layout", str(layout_file)]) == 2
    )


def test_keys_create_into_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "keys.json"
    for scope in ("display", "ingest"):
        assert main(["keys", "create", "--scope", scope, "--file", str(path)]) == 0
    keys = capsys.readouterr().out.split()
    records = load_key_file(path)
    assert [r.key_hash for r in records] == [hash_key(k) for k in keys]
    assert [sorted(r.scopes) for r in records] == [["display"], ["ingest"]]
    assert oct(path.stat().st_mode)[-3:] == "600"


def test_service_settings_carry_the_privacy_settings() -> None:
    from pydantic import ValidationError
    from storesense.api.settings import ServiceSettings

    settings = ServiceSettings(optin={"retention": {"days": 90}, "visit_gap_s": 60})
    assert settings.optin is not None and settings.optin.retention.days == 90
    assert ServiceSettings().optin is None  # defaults: 30 days, no hooks
    with pytest.raises(ValidationError, match=r"optin\.retention\.days"):
        ServiceSettings(optin={"retention": {"days": -1}})


def test_serve_with_an_unreadable_key_file_is_a_one_line_error(
    layout_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = f"sqlite:///{tmp_path / 's.db'}"
    args = ["serve", "--layout", str(layout_file), "--store", store, "--api-keys", str(tmp_path)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path}: cannot read the key file" in err
    assert "Traceback" not in err and err.count("\n") == 1


@pytest.mark.parametrize(
    "action",
    [["list"], ["delete", "k_0123"], ["create", "--scope", "admin"]],
)
def test_keys_with_an_unreachable_store_is_a_one_line_error(
    action: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    store = f"redis://127.0.0.1:{port}/0"
    assert main(["keys", action[0], "--store", store, *action[1:]]) == 2
    captured = capsys.readouterr()
    assert f"store {store}: Redis unavailable" in captured.err
    assert "Traceback" not in captured.err and captured.err.count("\n") == 1
    assert "ss_" not in captured.out  # no key printed for a key that was not stored


def test_keys_create_with_a_blank_name_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = f"sqlite:///{tmp_path / 's.db'}"
    assert main(["keys", "create", "--scope", "admin", "--name", "  ", "--store", store]) == 2
    err = capsys.readouterr().err
    assert "a key needs a non-empty name" in err and err.count("\n") == 1
