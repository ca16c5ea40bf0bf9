"""Per-frame cost of the floor plan on PETS09-S2L1's ground-truth tracks, beside peers.

Three questions, each answered side by side in one run (best of ``--repeats``):

1. What does a homography add to the zone engine?  ``ZoneEngine.update`` over the
   10 zones + 10 lines of ``examples/pets09_bench.yaml``, without and with the
   camera's homography (then every frame maps the feet to the floor and keeps each
   visit's walked distance for ``distance_m``).
2. Floor zones: drawn in pixels once (what the engine does: a homography keeps
   straight edges straight) versus mapping every frame's feet to metres and testing
   them in floor space (our vectorised ``PolygonSet``, and shapely 2 ``contains_xy``).
   All three give the same membership (checked here).
3. Heatmap: ``Heatmap.add`` (``np.add.at`` on a growing grid) versus
   ``np.histogram2d`` and ``np.bincount`` on a fixed grid.

Run: ``python benchmarks/floorplan.py [--repeats 5]``
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import shapely
from storesense.zones.config import StoreLayout, load_layout
from storesense.zones.engine import ZoneEngine
from storesense.zones.floorplan import Heatmap, feet
from storesense.zones.geometry import PolygonSet

sys.path.insert(0, str(Path(__file__).resolve().parent))
from counting import CAMERA, FPS, LAYOUT, PETS, load_gt_tracks

ROOT = Path(__file__).resolve().parents[1]


def with_homography(layout: StoreLayout) -> StoreLayout:
    """The bench layout with the PETS09 example's (illustrative) homography on its camera."""
    homography = load_layout(ROOT / "examples" / "pets09.yaml").camera(CAMERA).homography
    cameras = [camera.model_copy(update={"homography": homography}) for camera in layout.cameras]
    return layout.model_copy(update={"cameras": cameras})


def best_of(repeats: int, fn: Callable[[], None]) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)

    tracks = load_gt_tracks(PETS / "gt" / "gt.txt", FPS, None, with_dont_care=True)
    frames = len(tracks)
    people = sum(len(t) for t in tracks) / frames
    plain = load_layout(LAYOUT)
    floor = with_homography(plain)
    homography = floor.camera(CAMERA).homography
    assert homography is not None

    def engine_run(layout: StoreLayout) -> Callable[[], None]:
        def run() -> None:
            engine = ZoneEngine(layout, CAMERA)
            for frame in tracks:
                engine.update(frame)

        return run

    rows: list[tuple[str, str, float]] = []
    base = best_of(args.repeats, engine_run(plain))
    rows.append(("engine", "10 zones + 10 lines, no homography", base))
    rows.append(
        (
            "engine",
            "10 zones + 10 lines, homography (distance_m)",
            best_of(args.repeats, engine_run(floor)),
        )
    )

    image_zones = [plain.image_polygon(zone) for zone in plain.zones]
    floor_zones = [homography.to_floor(polygon) for polygon in image_zones]
    pixel_set, floor_set = PolygonSet(image_zones), PolygonSet(floor_zones)
    shapes = [shapely.Polygon(polygon) for polygon in floor_zones]
    for shape in shapes:
        shapely.prepare(shape)
    anchors = [feet(t) for t in tracks if len(t)]
    ours_pixels = [pixel_set.contains(points) for points in anchors]
    ours_floor = [floor_set.contains(homography.to_floor_checked(p)[0]) for p in anchors]
    same = all(np.array_equal(a, b) for a, b in zip(ours_pixels, ours_floor, strict=True))

    def pixels_once() -> None:
        for points in anchors:
            pixel_set.contains(points)

    def floor_per_frame() -> None:
        for points in anchors:
            floor_set.contains(homography.to_floor_checked(points)[0])

    def shapely_per_frame() -> None:
        for points in anchors:
            x, y = homography.to_floor_checked(points)[0].T
            for shape in shapes:
                shapely.contains_xy(shape, x, y)

    membership = best_of(args.repeats, pixels_once)
    rows.append(("floor zones", "drawn in pixels once (ours)", membership))
    rows.append(
        (
            "floor zones",
            "feet to metres per frame + PolygonSet",
            best_of(args.repeats, floor_per_frame),
        )
    )
    rows.append(
        (
            "floor zones",
            "feet to metres per frame + shapely contains_xy",
            best_of(args.repeats, shapely_per_frame),
        )
    )

    floor_feet = [homography.to_floor_checked(feet(t))[0] for t in tracks]
    bounds = (
        np.nanmin(np.concatenate(floor_feet), axis=0),
        np.nanmax(np.concatenate(floor_feet), axis=0),
    )
    cell = 0.5
    edges = [np.arange(bounds[0][i], bounds[1][i] + cell, cell) for i in range(2)]
    shape = (len(edges[1]) - 1, len(edges[0]) - 1)

    def heatmap_ours() -> None:
        heatmap = Heatmap(cell)
        for points in floor_feet:
            heatmap.add(points, 1 / FPS)

    def heatmap_histogram2d() -> None:
        grid = np.zeros(shape)
        for points in floor_feet:
            grid += np.histogram2d(points[:, 1], points[:, 0], bins=(edges[1], edges[0]))[0] / FPS

    def heatmap_bincount() -> None:
        grid = np.zeros(shape).ravel()
        for points in floor_feet:
            cells = np.floor((points - bounds[0]) / cell).astype(np.int64)
            cells = np.minimum(cells, np.array(shape)[::-1] - 1)
            grid += np.bincount(cells[:, 1] * shape[1] + cells[:, 0], minlength=grid.size) / FPS

    heat = best_of(args.repeats, heatmap_ours)
    rows.append(("heatmap", "Heatmap.add (np.add.at, growing grid, ours)", heat))
    rows.append(
        ("heatmap", "np.histogram2d, fixed grid", best_of(args.repeats, heatmap_histogram2d))
    )
    rows.append(("heatmap", "np.bincount, fixed grid", best_of(args.repeats, heatmap_bincount)))

    print(
        f"PETS09-S2L1 ground truth: {frames} frames, {people:.1f} people a frame, "
        f"best of {args.repeats}; floor membership identical both ways: {same}"
    )
    print(f"{'what':<12} {'how':<50} {'ms/frame':>9} {'ratio':>7}")
    group_base: dict[str, float] = {}
    for group, how, seconds in rows:
        group_base.setdefault(group, seconds)
        per_frame = seconds / frames * 1e3
        print(f"{group:<12} {how:<50} {per_frame:>9.4f} {seconds / group_base[group]:>7.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
