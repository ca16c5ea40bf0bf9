"""Anonymous by default, enforced in code: nothing but a pixelated snapshot can export a frame."""

from __future__ import annotations

import ast
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("vision", "zones", "models", "api")
FRAME_WRITERS = {
    "imwrite",
    "imencode",
    "VideoWriter",
    "save",
    "savez",
    "savez_compressed",
    "tofile",
    "imwritemulti",
}
ALLOWED = {
    # The one frame encoder: ``encode_snapshot``, which pixelates every person first.
    ("vision/privacy.py", "imencode"),
    # Heatmap.write: an aggregate grid of person-seconds per floor cell, built
    # from floor points alone; no frame pixel ever reaches it.
    ("zones/floorplan.py", "imwrite"),
    ("zones/floorplan.py", "save"),
}


def frame_writer_calls() -> set[tuple[str, str]]:
    found = set()
    for package in PACKAGES:
        for path in (REPO_ROOT / package).rglob("*.py"):
            tree = ast.parse(path.read_text(), filename=str(path))
            for node in ast.walk(tree):
                if isinstance(node, ast.Attribute) and node.attr in FRAME_WRITERS:
                    found.add((path.relative_to(REPO_ROOT).as_posix(), node.attr))
                elif isinstance(node, ast.alias) and node.name in FRAME_WRITERS:
                    found.add((path.relative_to(REPO_ROOT).as_posix(), node.name))
    return found


def test_no_code_writes_or_encodes_frames_except_the_pixelating_snapshot() -> None:
    calls = frame_writer_calls()
    assert calls - ALLOWED == set(), (
        "frames must never be written or encoded except through "
        "storesense.vision.privacy.encode_snapshot (people pixelated): found "
        f"{sorted(calls - ALLOWED)}"
    )
    assert calls >= ALLOWED, "the scan no longer sees encode_snapshot: is it broken?"
