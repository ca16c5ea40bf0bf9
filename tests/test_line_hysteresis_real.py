"""The line rule on real trajectories: PETS09-S2L1's annotated people through the held-out
layouts (``examples/pets09_holdout*.yaml``).

The benchmark's truth (``benchmarks/counting.py``, :func:`truth_counts`) writes the
published rule out again independently of the engine; here both must agree crossing for
crossing, with the default ``depth`` and with 0 (every side change).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from storesense.vision.detections import Tracks
from storesense.zones.config import LINE_DEPTH, load_layout

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from counting import FPS, load_gt_tracks, run_engine, truth_counts  # noqa: E402

LAYOUTS = ["pets09_holdout.yaml", "pets09_holdout_b.yaml", "pets09_holdout_c.yaml"]


@pytest.fixture(scope="module")
def gt_tracks(pets09: Path) -> list[Tracks]:
    return load_gt_tracks(pets09 / "gt" / "gt.txt", FPS, None, with_dont_care=True)


@pytest.mark.parametrize("name", LAYOUTS)
def test_engine_counts_the_annotated_people_like_the_published_rule(
    name: str, gt_tracks: list[Tracks]
) -> None:
    layout = load_layout(ROOT / "examples" / name)
    for depth in (LINE_DEPTH, 0.0):
        truth = truth_counts(layout, gt_tracks, depth=depth)
        ours = run_engine(layout, gt_tracks, line_depth=depth)
        assert ours["lines"] == truth["lines"], (name, depth)


def test_default_depth_drops_only_shallow_pairs(gt_tracks: list[Tracks]) -> None:
    """On the first layout annotated people walk along h250: the plain rule counts their
    in/out pairs, the default depth does not; every other line is unchanged."""
    layout = load_layout(ROOT / "examples" / LAYOUTS[0])
    plain = truth_counts(layout, gt_tracks)["lines"]
    rule = truth_counts(layout, gt_tracks, depth=LINE_DEPTH)["lines"]
    dropped = {
        line: (plain[line]["in"] - rule[line]["in"], plain[line]["out"] - rule[line]["out"])
        for line in plain
        if plain[line] != rule[line]
    }
    assert dropped, "the default depth should drop the walk along a line"
    assert all(d_in == d_out and d_in > 0 for d_in, d_out in dropped.values()), dropped
