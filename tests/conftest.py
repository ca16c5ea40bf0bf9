"""Shared fixtures: the real models and MOT15 sequences in ``../shared``.

Nothing here needs ``../shared`` until a test asks for it: the data fixtures below are
lazy, so pure unit tests (Kalman filter, tracker, geometry…) run without it. A test that
does use one FAILS (never skips) with a message naming the missing path.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest

pytest_plugins = ["fixtures_redis"]

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("STORESENSE_SHARED", REPO_ROOT.parent / "shared")).resolve()


def _require(path: Path) -> Path:
    if not path.exists():
        pytest.fail(
            f"{path} is missing: this test needs the real models and videos of ../shared "
            f"beside the repository (or STORESENSE_SHARED pointing at them)",
            pytrace=False,
        )
    return path


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    return _require(SHARED)


@pytest.fixture(scope="session")
def model_mirror(shared_dir: Path) -> Path:
    return _require(shared_dir / "models")


@pytest.fixture(scope="session")
def pets09(shared_dir: Path) -> Path:
    """Folder with PETS09-S2L1.avi (real 7 fps), gt/gt.txt and seqinfo.ini."""
    return _require(shared_dir / "data" / "PETS09-S2L1")


@pytest.fixture(scope="session")
def tud_campus(shared_dir: Path) -> Path:
    return _require(shared_dir / "data" / "TUD-Campus")


@pytest.fixture(scope="session")
def split_tracks(pets09: Path, yolox_path: Path) -> dict[str, Any]:
    """YOLOX-Nano tracks of PETS09 cut into two overlapping camera views (``left``,
    ``right``; ``benchmarks/store_visits.py``), one list of ``Tracks`` a frame per view."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from store_visits import track_split
    from storesense.vision.detector import Detector

    tracks = track_split(pets09, Detector.from_model("yolox-nano"))
    assert len(tracks["left"]) == len(tracks["right"]) == 795
    return tracks


@pytest.fixture(scope="session", autouse=True)
def _model_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Every test run fetches models into its own cache, and only from the ../shared mirror.

    This needs nothing to exist: a test that fetches a model without asking for
    ``model_mirror`` (or ``yolox_path``/``reid_path``, which require it) gets the fetcher's
    one-line "mirror missing" error instead of a download.
    """
    os.environ["STORESENSE_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    os.environ["STORESENSE_MODEL_MIRROR"] = str(SHARED / "models")


@pytest.fixture(scope="session")
def yolox_path(_model_cache: None, model_mirror: Path) -> Path:
    from storesense.models.fetch import fetch

    return fetch("yolox-nano", mirror=model_mirror)


@pytest.fixture(scope="session")
def reid_path(_model_cache: None, model_mirror: Path) -> Path:
    from storesense.models.fetch import fetch

    return fetch("person-reid-0248", mirror=model_mirror)
