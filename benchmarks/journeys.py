"""Journey accuracy on PETS09-S2L1: paths and transitions of ours and of the peers' tracks.

Truth: the ground-truth tracks (``gt.txt``, every annotated person, as in
``benchmarks/counting.py``) through the same zone engine (re-link off: the truth
has no fragments) and the same path rules (feet point, ``path_min_seconds``).
Then, in the same run, the tracks of

* ours: YOLOX-Nano (score >= 0.1, the service's default) + our tracker with its
  defaults, through :class:`~storesense.zones.camera.CameraAnalytics` (zone engine,
  re-link, :class:`~storesense.zones.journeys.VisitLinker`) and
  :func:`~storesense.zones.journeys.summarise_journeys`;
* the peers (supervision ByteTrack, trackers ByteTrack, trackers OC-SORT, run as in
  ``benchmarks/tracking.py`` on the same cached detections) through exactly the same
  code after the tracker;
* every tracker again with the journey-level linking off ("raw": the zone events
  chained per engine visit, only the zone engine's 1 s re-link).

Scores per layout (``examples/journeys_*.yaml``): the transition error (sum of
|ours - truth| over all pairs / total truth transitions) and the path agreement
(sum over paths of min(ours, truth) / max(our visits, true visits)).

Run: ``python benchmarks/journeys.py`` (~20 s; the detections are cached in
``benchmarks/results/`` by ``tracking_detections.py``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from counting import load_gt_tracks
from storesense.vision.detections import Detections, Tracks
from storesense.vision.tracking import Tracker
from storesense.zones.camera import CameraAnalytics
from storesense.zones.config import StoreLayout, load_layout
from storesense.zones.events import Event
from storesense.zones.journeys import (
    JourneySummary,
    path_agreement,
    summarise_journeys,
    transition_error,
)
from tracking import PEERS, run_tracker
from tracking_detections import RESULTS, load_sequence
from tracking_eval import TrackRow

ROOT = Path(__file__).resolve().parents[1]
LAYOUTS = sorted((ROOT / "examples").glob("journeys_*.yaml"))
CAMERA = "cam1"
FRAME_SIZE = (768, 576)
SERVICE_SCORE_THRESHOLD = 0.1
"""The detector's default score threshold (what ``storesense serve`` and ``count`` use)."""


def rows_to_tracks(rows: list[TrackRow], fps: float) -> list[Tracks]:
    """A peer's per-frame output as :class:`Tracks` (velocity from the last sighting)."""
    out: list[Tracks] = []
    previous: dict[int, tuple[float, np.ndarray]] = {}
    for index, row in enumerate(rows):
        now = index / fps
        feet = np.column_stack([(row.xyxy[:, 0] + row.xyxy[:, 2]) / 2, row.xyxy[:, 3]])
        velocity = np.zeros((len(row.ids), 2))
        for r, track_id in enumerate(row.ids.tolist()):
            if track_id in previous:
                then, where = previous[track_id]
                velocity[r] = (feet[r] - where) / (now - then)
            previous[track_id] = (now, feet[r])
        out.append(Tracks(row.xyxy, np.ones(len(row.ids)), row.ids, velocity, timestamp=now))
    return out


def our_tracks(frames: list[Detections], fps: float) -> list[Tracks]:
    tracker = Tracker()
    out = []
    for index, detections in enumerate(frames):
        keep = detections.confidence >= SERVICE_SCORE_THRESHOLD
        out.append(tracker.update(detections[keep], timestamp=index / fps, frame_index=index + 1))
    return out


def journey_events(
    layout: StoreLayout, tracks: list[Tracks], *, link: bool, relink: bool = True
) -> list[Event]:
    """Events of the layout's camera for these tracks, visit ids stamped when ``link``."""
    data = layout.model_dump(mode="json")
    if not link:
        data["store"]["journeys"]["link_seconds"] = 0.0
    if not relink:
        for camera in data["cameras"]:
            camera["relink_seconds"] = 0.0
    layout = StoreLayout.model_validate(data)
    analytics = CameraAnalytics(layout, CAMERA, shelves=False, frame_size=FRAME_SIZE)
    events: list[Event] = []
    frames = ((None, t) for t in tracks)
    from storesense.api.runtime import summarise_frames

    summarise_frames(layout, CAMERA, frames, analytics, sink=events.append)
    return events


def journeys_of(layout: StoreLayout, events: list[Event]) -> JourneySummary:
    settings = layout.store.journeys
    return summarise_journeys(
        events,
        path_min_seconds=settings.path_min_seconds,
        path_gap_seconds=settings.path_gap_seconds,
        path_max_length=1000,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, default=RESULTS / "journeys.json")
    args = parser.parse_args()
    sequence = load_sequence("PETS09-S2L1")
    fps = sequence.fps
    gt = load_gt_tracks(
        sequence.folder / "gt" / "gt.txt", fps, len(sequence.frames), with_dont_care=True
    )
    tracks: dict[str, list[Tracks]] = {"storesense": our_tracks(sequence.frames, fps)}
    for peer, build in PEERS.items():
        tracks[peer] = rows_to_tracks(run_tracker(build, sequence)[0], fps)
    results: dict[str, dict[str, dict[str, float | int]]] = {}
    for layout_path in LAYOUTS:
        layout = load_layout(layout_path)
        name = layout_path.stem.removeprefix("journeys_")
        truth = journeys_of(layout, journey_events(layout, gt, link=False, relink=False))
        results[name] = {
            "truth": {
                "visits": truth.visits,
                "transitions": sum(n for row in truth.transitions.values() for n in row.values()),
            }
        }
        for label, per_frame in tracks.items():
            for link in (True, False):
                ours = journeys_of(layout, journey_events(layout, per_frame, link=link))
                results[name][label + ("" if link else " (raw)")] = {
                    "visits": ours.visits,
                    "transitions": sum(
                        n for row in ours.transitions.values() for n in row.values()
                    ),
                    "transition_error": round(
                        transition_error(ours.transitions, truth.transitions), 4
                    ),
                    "path_agreement": round(path_agreement(ours.paths, truth.paths), 4),
                }
    header = (
        f"{'layout':<10} {'tracks':<30} {'visits':>6} {'trans':>6} {'trans err':>9} "
        f"{'path agree':>10}"
    )
    print(header)
    print("-" * len(header))
    for name, rows in results.items():
        for label, row in rows.items():
            err = f"{row['transition_error']:9.1%}" if "transition_error" in row else " " * 9
            agree = f"{row['path_agreement']:10.1%}" if "path_agreement" in row else " " * 10
            print(
                f"{name:<10} {label:<30} {row['visits']:6d} {row['transitions']:6d} {err} {agree}"
            )
    mean = {
        label: float(np.mean([rows[label]["transition_error"] for rows in results.values()]))
        for label in next(iter(results.values()))
        if label != "truth"
    }
    true_total = sum(int(rows["truth"]["transitions"]) for rows in results.values())
    pooled = {
        label: sum(
            float(rows[label]["transition_error"]) * int(rows["truth"]["transitions"])
            for rows in results.values()
        )
        / true_total
        for label in mean
    }
    print("\ntransition error over all layouts (mean of layouts / pooled: all errors / all truth):")
    for label, value in sorted(mean.items(), key=lambda item: item[1]):
        print(f"  {label:<30} {value:6.1%} / {pooled[label]:6.1%}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(
        json.dumps(
            {"layouts": results, "mean_transition_error": mean, "pooled_transition_error": pooled},
            indent=2,
        )
    )
    print(f"\nwritten {args.json}")


if __name__ == "__main__":
    main()
