"""Tracking benchmark: our Tracker beside supervision's and the ``trackers`` package's.

All trackers get the same cached YOLOX-Nano detections (see
``tracking_detections.py``) of PETS09-S2L1 (7 fps) and TUD-Campus (25 fps);
accuracy is scored with TrackEval (HOTA, CLEAR MOTA/IDSW, Identity IDF1) and the
cost of each ``update`` call is timed with ``time.perf_counter_ns`` (median and
95th percentile over all frames of three interleaved rounds).

Run: ``python benchmarks/tracking.py`` (prints a table and writes
``benchmarks/results/tracking.json``).

``python benchmarks/tracking.py --output-box detection``: the same with our tracker reporting
each matched detection's own box instead of the Kalman-filtered one (``TrackerConfig.output_box``;
writes ``tracking_output_box_detection.json``).

``python benchmarks/tracking.py --hold-out confirm_score``: one setting chosen on one
sequence (averaged over its variants) and reported on the other, both ways.

``python benchmarks/tracking.py --folds``: generalisation. The defaults are chosen by
grid search (:data:`FOLD_GRID`) on one sequence and reported on the other, both ways,
and on the other's variants (``tracking_variants.py``: 5 and 10 fps, 0.5x / 0.75x size,
a crop, dim and bright frames), beside the peers with their defaults; then the spread of
our margin over the best peer (writes ``benchmarks/results/tracking_folds.json``).
"""

from __future__ import annotations

import functools
import itertools
import json
import sys
import time
import warnings
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from storesense.vision.detections import Detections
from storesense.vision.tracking import Tracker, TrackerConfig
from tracking_detections import RESULTS, SEQUENCES, SequenceDetections, load_sequence
from tracking_eval import Scores, TrackRow, evaluate, load_ground_truth
from tracking_variants import VARIANTS, VariantSequence, load_variant

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
    sequence: SequenceDetections | VariantSequence,
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


def score_variant(sequence: VariantSequence, rows: list[TrackRow]) -> Scores:
    return evaluate(sequence.ground_truth, sequence.ignored, rows)


# Every TrackerConfig field a scene could pull one way; each fold picks its own values.
FOLD_GRID: dict[str, list[object]] = {
    "match_iou": [0.1, 0.3],
    "new_track_score": [0.5, 0.7],
    "lost_buffer_seconds": [1.0, 2.0, 4.0],
    "direction_weight": [0.0, 0.2, 0.4],
    "confirm_score": [0.8, 0.9, 1.0],
}


def tune(
    sequence: VariantSequence, grid: dict[str, list[object]]
) -> tuple[dict[str, object], Scores]:
    """The grid point with the best HOTA + IDF1 on ``sequence`` (ties: first in grid order)."""
    best: tuple[float, dict[str, object], Scores] | None = None
    for combo in itertools.product(*grid.values()):
        overrides = dict(zip(grid, combo, strict=True))
        config = TrackerConfig(**overrides)  # type: ignore[arg-type]
        rows, _ = run_tracker(partial(_ours, config=config), sequence)
        s = score_variant(sequence, rows)
        if best is None or s.hota + s.idf1 > best[0]:
            best = (s.hota + s.idf1, overrides, s)
    assert best is not None
    return best[1], best[2]


def report_variants(
    config: TrackerConfig, test_on: str, margins: dict[str, list[float]] | None
) -> dict[str, object]:
    """Ours with ``config`` beside the peers on every variant of ``test_on``; prints a table
    and adds our margins over the best peer to ``margins``."""
    print(
        f"{'variant':<12} {'tracker':<22} {'HOTA':>6} {'MOTA':>6} {'IDF1':>6} {'IDSW':>5}"
        "  vs best peer HOTA/IDF1"
    )
    builders = {OURS: partial(_ours, config=config), **PEERS}
    table: dict[str, object] = {}
    base_fps = load_sequence(test_on).fps
    for variant in VARIANTS:
        if variant.fps is not None and variant.fps >= base_fps:
            continue  # no faster than the sequence itself: the same as "as is"
        sequence = load_variant(test_on, variant)
        scores = {
            label: score_variant(sequence, run_tracker(build, sequence)[0])
            for label, build in builders.items()
        }
        peers = {k: v for k, v in scores.items() if k != OURS}
        best_hota = max(v.hota for v in peers.values())
        best_idf1 = max(v.idf1 for v in peers.values())
        ours = scores[OURS]
        if margins is not None:
            margins["HOTA"].append(ours.hota - best_hota)
            margins["IDF1"].append(ours.idf1 - best_idf1)
        for label, s in scores.items():
            compare = ""
            if label == OURS:
                compare = f"{s.hota - best_hota:+5.1f}/{s.idf1 - best_idf1:+5.1f}"
            print(
                f"{variant.name:<12} {label:<22} {s.hota:6.1f} {s.mota:6.1f} {s.idf1:6.1f}"
                f" {s.idsw:5d}  {compare}"
            )
        table[variant.name] = {label: s.as_dict() for label, s in scores.items()}
    return table


def print_spread(margins: dict[str, list[float]]) -> None:
    """One line per metric: min, median and max of ours minus the best peer over variants."""
    for metric, values in margins.items():
        arr = np.array(values)
        print(
            f"  {metric}: min {arr.min():+.1f}, median {np.median(arr):+.1f}, max {arr.max():+.1f}"
            f" ({int((arr > 0).sum())}/{len(arr)} above every peer)"
        )


def folds(grid: dict[str, list[object]]) -> None:
    """Tune on one sequence, report on the other (both ways) and on its variants; then
    the shipped defaults on both."""
    names = list(SEQUENCES)
    summary: dict[str, object] = {}
    margins: dict[str, list[float]] = {"HOTA": [], "IDF1": []}
    for tune_on, test_on in ((names[0], names[1]), (names[1], names[0])):
        chosen, tuned_score = tune(load_variant(tune_on, VARIANTS[0]), grid)
        print(
            f"\n== tuned on {tune_on} (HOTA {tuned_score.hota:.1f}, IDF1 {tuned_score.idf1:.1f}"
            f" there), reported on {test_on} ==\nchosen: {chosen}"
        )
        config = TrackerConfig(**chosen)  # type: ignore[arg-type]
        table = report_variants(config, test_on, margins)
        summary[f"{tune_on} -> {test_on}"] = {"chosen": chosen, **table}
    print("\nours minus best peer, tuned on the other sequence, every variant (spread):")
    print_spread(margins)
    shipped: dict[str, list[float]] = {"HOTA": [], "IDF1": []}
    for name in names:
        print(f"\n== shipped defaults (TrackerConfig()) on {name} ==")
        summary[f"defaults on {name}"] = report_variants(TrackerConfig(), name, shipped)
    print("\nshipped defaults minus best peer, both sequences, every variant (spread):")
    print_spread(shipped)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "tracking_folds.json").write_text(json.dumps(summary, indent=2, default=str))
    print(f"written {RESULTS / 'tracking_folds.json'}")


HOLD_OUT_VALUES: dict[str, list[object]] = {"confirm_score": [0.7, 0.8, 0.9, 1.0]}
"""Values of one setting compared by ``--hold-out SETTING`` (the others at their defaults)."""


def hold_out(setting: str, values: list[object]) -> None:
    """One setting held out: chosen (best HOTA + IDF1 averaged over every variant of one
    sequence, the other settings at their defaults) and reported on the other sequence's
    variants beside the shipped default and the peers, both ways."""
    names = list(SEQUENCES)
    default = TrackerConfig.model_fields[setting].default
    for tune_on, test_on in ((names[0], names[1]), (names[1], names[0])):
        base_fps = load_sequence(tune_on).fps
        variants = [v for v in VARIANTS if v.fps is None or v.fps < base_fps]
        sequences = [load_variant(tune_on, v) for v in variants]
        means = {}
        for value in values:
            config = TrackerConfig(**{setting: value})  # type: ignore[arg-type]
            scores = [
                score_variant(seq, run_tracker(partial(_ours, config=config), seq)[0])
                for seq in sequences
            ]
            means[value] = float(np.mean([s.hota + s.idf1 for s in scores]))
        chosen = max(values, key=lambda v: means[v])  # ties: first in order
        table = ", ".join(f"{v}: {m / 2:.1f}" for v, m in means.items())
        print(
            f"\n== {setting} chosen on {tune_on} (mean of HOTA and IDF1 over {len(variants)}"
            f" variants: {table}) -> {chosen}; reported on {test_on} =="
        )
        margins: dict[str, list[float]] = {"HOTA": [], "IDF1": []}
        print(f"-- {setting} = {chosen} (chosen on {tune_on}) --")
        report_variants(TrackerConfig(**{setting: chosen}), test_on, margins)  # type: ignore[arg-type]
        if chosen != default:
            print(f"-- {setting} = {default} (shipped default) --")
            report_variants(TrackerConfig(), test_on, None)
        for metric, margin in margins.items():
            arr = np.array(margin)
            print(
                f"  chosen, {metric} minus best peer on {test_on}: min {arr.min():+.1f},"
                f" median {np.median(arr):+.1f} ({int((arr > 0).sum())}/{len(arr)} above)"
            )


def main() -> None:
    if "--folds" in sys.argv[1:]:
        folds(FOLD_GRID)
        return
    if "--hold-out" in sys.argv[1:]:
        setting = sys.argv[sys.argv.index("--hold-out") + 1]
        hold_out(setting, HOLD_OUT_VALUES.get(setting) or FOLD_GRID[setting])
        return
    ours: Callable[..., tuple[UpdateFn, Callable[[Detections], object]]] = _ours
    output_name = "tracking.json"
    if "--output-box" in sys.argv[1:]:
        box = sys.argv[sys.argv.index("--output-box") + 1]
        if box not in ("filtered", "detection"):
            sys.exit(f"--output-box: 'filtered' or 'detection', got {box!r}")
        config = TrackerConfig(output_box=box)  # type: ignore[arg-type]  # checked above
        ours = functools.partial(_ours, config=config)
        output_name = f"tracking_output_box_{box}.json"
    builders = {OURS: ours, **PEERS}
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
    (RESULTS / output_name).write_text(json.dumps(results, indent=2))
    print(f"\nwritten {RESULTS / output_name}")


if __name__ == "__main__":
    main()
