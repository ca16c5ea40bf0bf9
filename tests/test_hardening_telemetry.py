"""Issue 9 item 2: onnxruntime writes no telemetry queue (``~/.cache/Microsoft``).

The real detector and re-id model run on a real PETS09 frame in a fresh Python
process whose ``HOME`` (and cache dir) is an empty temporary folder; nothing may
appear under ``.cache/Microsoft`` afterwards.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = """
import sys
import cv2
from storesense.vision.detector import Detector
from storesense.vision.reid import ReidEmbedder

image = cv2.VideoCapture(sys.argv[1]).read()[1]
detections = Detector(sys.argv[2]).detect(image)
assert len(detections) > 0, "the detector should find people on PETS09 frame 0"
embeddings = ReidEmbedder(sys.argv[3]).embed(image, detections.xyxy)
print(len(detections), embeddings.shape)
"""


@pytest.mark.parametrize("xdg_cache", [False, True], ids=["home-cache", "xdg-cache"])
def test_no_onnxruntime_telemetry_file_is_written(
    tmp_path: Path, pets09: Path, yolox_path: Path, reid_path: Path, xdg_cache: bool
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    env = {
        k: v for k, v in os.environ.items() if k not in ("XDG_CACHE_HOME", "ORT_DISABLE_TELEMETRY")
    }
    env["HOME"] = str(home)
    if xdg_cache:
        env["XDG_CACHE_HOME"] = str(home / "xdg")
    ran = subprocess.run(
        [
            sys.executable,
            "-c",
            SCRIPT,
            str(pets09 / "PETS09-S2L1.avi"),
            str(yolox_path),
            str(reid_path),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ran.returncode == 0, ran.stderr
    written = sorted(str(p.relative_to(home)) for p in home.rglob("*"))
    assert not [p for p in written if "Microsoft" in p or "onnxruntime" in p], written
