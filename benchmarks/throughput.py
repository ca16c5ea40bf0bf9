"""Camera pipeline throughput on PETS09-S2L1 (795 frames, 768x576, real 7 fps).

Measures, in one run on the same machine:

1. per-frame stage times (median and p95, ms): decode, preprocess, ``session.run``,
   postprocess, tracker — from a sequential pass so the stages do not overlap;
2. detector-only throughput: decode → letterbox tensor → ``session.run`` on one thread,
   nothing else (no decoding of the output, no NMS, no tracker);
3. end-to-end throughput, the ``storesense track`` equivalent: source → decode thread →
   detect → track → MOT lines written; and the same without the decode thread;

and prints end-to-end / detector-only ratios (target >= 0.85).

The modes run side by side: each has its own open video, and they take turns in
chunks of ``--chunk`` frames until each has done every frame, so a burst of load
from other processes hits all of them alike. CPU ms/frame (process CPU time, all
threads) is also printed: it shows the work each mode costs, whatever the load.

Usage::

    python benchmarks/throughput.py                 # all 795 frames, 1 round
    python benchmarks/throughput.py --frames 200 --rounds 2 --threads 2
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("STORESENSE_SHARED", REPO.parent / "shared"))
os.environ.setdefault("STORESENSE_MODEL_MIRROR", str(SHARED / "models"))
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")

from storesense.api.cli.track import write_mot_lines  # noqa: E402
from storesense.models.fetch import fetch  # noqa: E402
from storesense.vision.detector import Detector, default_intra_op_threads  # noqa: E402
from storesense.vision.pipeline import (  # noqa: E402
    STAGES,
    CameraPipeline,
    PipelineStats,
    run_pipeline,
)
from storesense.vision.sources import open_source  # noqa: E402

VIDEO = SHARED / "data" / "PETS09-S2L1" / "PETS09-S2L1.avi"
DETECTOR_ONLY = "detector-only (decode+tensor+run, 1 thread)"
END_TO_END = "end-to-end, decode thread (storesense track)"
END_TO_END_SERIAL = "end-to-end, no decode thread"


def detector_only(detector: Detector) -> Iterator[None]:
    """Decode, build the input tensor and ``session.run``: the floor of any pipeline."""
    with open_source(VIDEO, camera_id="pets09", fps=7) as source:
        for frame in source:
            tensor, _ = detector.preprocess(frame.image)
            detector.run(tensor[None])
            yield


def end_to_end(detector: Detector, prefetch: int) -> Iterator[None]:
    """What ``storesense track`` does: pipeline plus MOT lines into a buffer."""
    out = io.StringIO()
    pipeline = CameraPipeline(detector)
    with open_source(VIDEO, camera_id="pets09", fps=7) as source:
        for frame, tracks in run_pipeline(source, pipeline, prefetch=prefetch):
            write_mot_lines(out, frame.index, tracks)
            yield


class StageSamples(PipelineStats):
    """Keeps every stage time for medians and p95 (the library keeps totals only)."""

    def __init__(self) -> None:
        super().__init__()
        self.samples: dict[str, list[float]] = {stage: [] for stage in STAGES}

    def record(self, stage: str, seconds: float) -> None:
        super().record(stage, seconds)
        self.samples[stage].append(seconds)

    def median(self, stage: str) -> float:
        return float(np.median(self.samples[stage])) if self.samples[stage] else 0.0

    def p95(self, stage: str) -> float:
        return float(np.quantile(self.samples[stage], 0.95)) if self.samples[stage] else 0.0


def stage_times(detector: Detector, limit: int) -> StageSamples:
    stats = StageSamples()
    pipeline = CameraPipeline(detector, stats=stats)
    with open_source(VIDEO, camera_id="pets09", fps=7) as source:
        for count, _ in enumerate(run_pipeline(source, pipeline, prefetch=0), start=1):
            if count == limit:
                break
    return stats


def side_by_side(
    modes: dict[str, Callable[[], Iterator[None]]], limit: int, chunk: int
) -> dict[str, tuple[int, float, float]]:
    """``{mode: (frames, wall seconds, CPU seconds)}``, the modes taking turns by chunk."""
    runners = {name: make() for name, make in modes.items()}
    done = dict.fromkeys(modes, 0)
    wall = dict.fromkeys(modes, 0.0)
    cpu = dict.fromkeys(modes, 0.0)
    active = list(modes)
    while active:
        for name in list(active):
            runner = runners[name]
            wall_start, cpu_start = time.perf_counter(), time.process_time()
            stepped = 0
            for _ in runner:
                stepped += 1
                if stepped == chunk or done[name] + stepped == limit:
                    break
            wall[name] += time.perf_counter() - wall_start
            cpu[name] += time.process_time() - cpu_start
            done[name] += stepped
            if stepped < chunk or done[name] >= limit:
                active.remove(name)
                close = getattr(runner, "close", None)
                if callable(close):
                    close()
    return {name: (done[name], wall[name], cpu[name]) for name in modes}


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--frames", type=int, default=795, help="frames per mode (<= 795)")
    parser.add_argument("--rounds", type=int, default=1, help="side-by-side rounds")
    parser.add_argument("--chunk", type=int, default=25, help="frames a mode runs per turn")
    parser.add_argument(
        "--threads", type=int, default=None, help="onnxruntime intra-op threads (default: auto)"
    )
    args = parser.parse_args()
    if not VIDEO.is_file():
        print(f"missing {VIDEO}: the benchmark needs ../shared", file=sys.stderr)
        return 2
    threads = args.threads if args.threads is not None else default_intra_op_threads()
    detector = Detector(fetch("yolox-nano"), "yolox", intra_op_threads=threads)
    print(
        f"PETS09-S2L1, {args.frames} frames, YOLOX-Nano 416x416, CPU, "
        f"{threads} intra-op threads, {os.cpu_count()} CPUs, load average "
        f"{os.getloadavg()[0]:.1f}"
    )
    for _, _ in zip(range(20), detector_only(detector), strict=False):  # warm-up
        pass

    stats = stage_times(detector, args.frames)
    print("\nper-frame stage times (sequential pass)")
    print(f"{'stage':<12} {'median ms':>10} {'p95 ms':>8}")
    for stage in STAGES:
        label = "session.run" if stage == "inference" else stage
        print(f"{label:<12} {stats.median(stage) * 1000:>10.2f} {stats.p95(stage) * 1000:>8.2f}")
    overhead = sum(stats.median(s) for s in ("preprocess", "postprocess", "tracker"))
    print(
        f"pre+post+tracker overhead: {overhead * 1000:.2f} ms = "
        f"{overhead / stats.median('inference'):.2f}x session.run"
    )

    modes: dict[str, Callable[[], Iterator[None]]] = {
        DETECTOR_ONLY: lambda: detector_only(detector),
        END_TO_END: lambda: end_to_end(detector, 4),
        END_TO_END_SERIAL: lambda: end_to_end(detector, 0),
    }
    totals = {name: [0, 0.0, 0.0] for name in modes}
    for _ in range(args.rounds):
        for name, (frames, wall, cpu) in side_by_side(modes, args.frames, args.chunk).items():
            totals[name][0] += frames
            totals[name][1] += wall
            totals[name][2] += cpu
    fps = {name: frames / wall for name, (frames, wall, _) in totals.items()}
    cpu_ms = {name: cpu / frames * 1000 for name, (frames, _, cpu) in totals.items()}
    print(f"\nside by side, {args.rounds} round(s), turns of {args.chunk} frames")
    print(f"{'mode':<46} {'fps':>7} {'ratio':>7} {'CPU ms/frame':>13} {'CPU ratio':>10}")
    for name in modes:
        print(
            f"{name:<46} {fps[name]:>7.1f} {fps[name] / fps[DETECTOR_ONLY]:>7.2f} "
            f"{cpu_ms[name]:>13.2f} {cpu_ms[name] / cpu_ms[DETECTOR_ONLY]:>10.2f}"
        )
    ratio = fps[END_TO_END] / fps[DETECTOR_ONLY]
    verdict = "meets" if ratio >= 0.85 else "misses"
    print(f"\nend-to-end / detector-only = {ratio:.2f} ({verdict} the 0.85 target)")
    print(f"PETS09 runs at 7 fps: end-to-end is {fps[END_TO_END] / 7:.1f}x real time")
    return 0


if __name__ == "__main__":
    sys.exit(main())
