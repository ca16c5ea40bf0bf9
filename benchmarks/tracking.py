"""Tracking benchmark: our Tracker beside supervision's and the ``trackers`` package's.

All trackers get the same cached YOLOX-Nano detections (see
``tracking_detections.py``) of PETS09-S2L1 (7 fps) and TUD-Campus (25 fps);
accuracy is scored with TrackEval (HOTA, CLEAR MOTA/IDSW, Identity IDF1) and the
cost of each ``update`` call is timed with ``time.perf_counter_ns`` (median and
95th percentile over all frames of three interleaved rounds).

Run: ``python benchmarks/tracking.py`` (prints a table and writes
``benchmarks/results/tracking.json``).
"""

from __future__ import annotations

import json
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from storesense.vision.detections import Detections
from storesense.vision.tracking import Tracker, TrackerConfig
from tracking_detections import RESULTS, SEQUENCES, SequenceDetections, load_sequence
from tracking_eval import Scores, TrackRow, evaluate, load_ground_truth

UpdateFn = Callable[[object, float, int], TrackRow]
OURS = "storesense"
ROUNDS = 3


def _ours(
    fps: float, config: TrackerConfig | None = None
) -> tuple[UpdateFn, Callable[[Detections], object]]:
    tracker = Tracker(config)

    def step(detections: object, timestamp: float, index: int) -> TrackRow:
        tracks = tracker.update(detections, timestamp, index)
        return TrackRow(tracks.track_id, tracks.xyxy.astype(np.float64))

    return step, lambda d: d


def _to_sv(detections: Detections) -> object:
    import supervision as sv

    return sv.Detections(
        xyxy=detections.xyxy.copy(),
        confidence=detections.confidence.copy(),
        class_id=detections.class_id.astype(int),
    )


def _sv_result(result: object) -> TrackRow:
    ids = np.asarray(result.tracker_id, np.int64)  # type: ignore[attr-defined]
    boxes = np.asarray(result.xyxy, np.float64).reshape(-1, 4)  # type: ignore[attr-defined]
    keep = ids >= 0
    return TrackRow(ids[keep], boxes[keep])


def _supervision(fps: float) -> tuple[UpdateFn, Callable[[Detections], object]]:
    import supervision as sv

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tracker = sv.ByteTrack(frame_rate=round(fps))

    def step(detections: object, timestamp: float, index: int) -> TrackRow:
        return _sv_result(tracker.update_with_detections(detections))  # type: ignore[arg-type]

    return step, _to_sv


def _trackers(kind: str) -> Callable[[float], tuple[UpdateFn, Callable[[Detections], object]]]:
    def build(fps: float) -> tuple[UpdateFn, Callable[[Detections], object]]:
        import trackers

        tracker = getattr(trackers, kind)(frame_rate=fps)

        def step(detections: object, timestamp: float, index: int) -> TrackRow:
            return _sv_result(tracker.update(detections))

        return step, _to_sv

    return build


PEERS: dict[str, Callable[[float], tuple[UpdateFn, Callable[[Detections], object]]]] = {
    "supervision ByteTrack": _supervision,
    "trackers ByteTrack": _trackers("ByteTrackTracker"),
    "trackers OC-SORT": _trackers("OCSORTTracker"),
}


def run_tracker(
    build: Callable[[float], tuple[UpdateFn, Callable[[Detections], object]]],
    sequence: SequenceDetections,
) -> tuple[list[TrackRow], np.ndarray]:
    """Tracker output per frame and update time per frame in nanoseconds."""
    step, convert = build(sequence.fps)
    inputs = [convert(d) for d in sequence.frames]
    rows: list[TrackRow] = []
    times = np.zeros(len(inputs), np.int64)
    for i, detections in enumerate(inputs):
        index = i + 1
        start = time.perf_counter_ns()
        row = step(detections, sequence.timestamp(index), index)
        times[i] = time.perf_counter_ns() - start
        rows.append(row)
    return rows, times


def score(sequence: SequenceDetections, rows: list[TrackRow]) -> Scores:
    gt, ignored = load_ground_truth(sequence.folder / "gt" / "gt.txt", len(sequence.frames))
    return evaluate(gt, ignored, rows)


def main() -> None:
    builders = {OURS: _ours, **PEERS}
    results: dict[str, dict[str, dict[str, float | int]]] = {}
    for name in SEQUENCES:
        sequence = load_sequence(name)
        outputs: dict[str, list[TrackRow]] = {}
        times: dict[str, list[np.ndarray]] = {label: [] for label in builders}
        for label, build in builders.items():
            outputs[label], _ = run_tracker(build, sequence)  # also warms up imports, caches
        # Interleaved rounds, so that load from other processes hits every tracker alike.
        for _ in range(ROUNDS):
            for label, build in builders.items():
                times[label].append(run_tracker(build, sequence)[1])
        results[name] = {}
        for label in builders:
            entry: dict[str, float | int] = dict(score(sequence, outputs[label]).as_dict())
            all_times = np.concatenate(times[label])
            entry["median_ms"] = float(np.median(all_times)) / 1e6
            entry["p95_ms"] = float(np.percentile(all_times, 95)) / 1e6
            results[name][label] = entry

    header = (
        f"{'sequence':<12} {'tracker':<22} {'HOTA':>6} {'MOTA':>6} {'IDF1':>6} {'IDSW':>5} "
        f"{'med ms':>7} {'p95 ms':>7}  vs best peer (HOTA/MOTA/IDF1 diff, time ratio)"
    )
    print(header)
    print("-" * len(header))
    for name, by_tracker in results.items():
        peers = {k: v for k, v in by_tracker.items() if k != OURS}
        best = {m: max(float(v[m]) for v in peers.values()) for m in ("HOTA", "MOTA", "IDF1")}
        fastest = min(float(v["median_ms"]) for v in peers.values())
        for label, r in by_tracker.items():
            compare = (
                f"{r['HOTA'] - best['HOTA']:+.1f}/{r['MOTA'] - best['MOTA']:+.1f}/"
                f"{r['IDF1'] - best['IDF1']:+.1f}, x{float(r['median_ms']) / fastest:.2f}"
            )
            r["vs_best_peer"] = compare  # type: ignore[assignment]
            print(
                f"{name:<12} {label:<22} {r['HOTA']:6.1f} {r['MOTA']:6.1f} {r['IDF1']:6.1f} "
                f"{r['IDSW']:5d} {r['median_ms']:7.3f} {r['p95_ms']:7.3f}  {compare}"
            )
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "tracking.json").write_text(json.dumps(results, indent=2))
    print(f"\nwritten {RESULTS / 'tracking.json'}")


if __name__ == "__main__":
    main()
