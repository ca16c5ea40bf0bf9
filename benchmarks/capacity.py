"""Capacity: how many live cameras one process keeps at their real frame rate.

For each camera count N, one process runs what ``storesense serve`` runs for its cameras
(the :class:`~storesense.api.runtime.WorkerSupervisor` with N camera workers over looped
clips paced at the real 7 fps, realtime sources that drop frames when the worker falls
0.5 s behind, zones + lines of ``examples/pets09_bench.yaml`` per camera, a SQLite store)
and reads from the ``/metrics`` counters (the process's Prometheus registry):

* processed and dropped (``reason="late"``) frames a second, and the dropped share;
* detector runs per frame (the motion gate skips the rest);
* CPU-ms a frame of the whole process (``getrusage``: every thread), and split by kind
  of thread (inference service, camera workers, decode threads, the rest; ``/proc``);
* the share of detector runs made on a crop (region-gated detection);
* detector-only CPU-ms a frame: bare ``session.run`` on PETS09 input tensors with the same
  model and threading as the row (the service's threads, or the old direct calls),
  measured in the same run just before the row; and the ratio of the two.
* (``--parts``) the CPU-ms a frame of each part of the per-frame path (:data:`PARTS`).

Clips: ``busy`` is PETS09-S2L1 looped (people walk all the time); ``quiet`` is built here
from it: 40 s of the empty plaza (median of the video) with sensor noise and a slow
lighting drift, then 20 s of the real people walking through (same noise and drift),
looped; camera i starts it at (i mod 4) quarters of the loop, so N cameras side by side
measure the loop's average (one person-filled camera in three, roughly).
``--quiet-empty 100`` makes a quieter store (100 s empty, 20 s people: one in six).
Modes: ``--inference shared`` is this version's serve (one
:class:`~storesense.vision.inference.InferenceService`, single-threaded sessions, one
service thread per core); ``direct`` is the previous serve (each camera thread calls a
shared session with the default intra-op threads). ``--gate on|off`` sets every
camera's ``motion.enabled``.

Then (``--counts``, default on) the counts with the gate on and off, each clip once
through the same pipeline as ``storesense count`` (not paced, every frame): line
crossings and zone entries of the 10 lines and 10 zones, and their differences; on the
busy clip also for the held-out layouts (``examples/pets09_holdout*.yaml``, not used to
choose any default).

Usage (each row takes ``--seconds`` plus ~4 s; the machine should be otherwise idle)::

    python benchmarks/capacity.py                                  # defaults below
    python benchmarks/capacity.py --cameras 1,6,10,12 --seconds 20 --clips busy --gate off
    python benchmarks/capacity.py --cameras 10,20,30 --clips quiet --gate on --no-counts
    python benchmarks/capacity.py --cameras 6,10 --inference direct,shared --gate off
    python benchmarks/capacity.py --cameras 10 --clips busy --gate on --no-counts --parts
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import resource
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("STORESENSE_SHARED", REPO.parent / "shared"))
os.environ.setdefault("STORESENSE_MODEL_MIRROR", str(SHARED / "models"))
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import numpy.typing as npt  # noqa: E402
import yaml  # noqa: E402
from prometheus_client import REGISTRY  # noqa: E402

PETS = SHARED / "data" / "PETS09-S2L1" / "PETS09-S2L1.avi"
BENCH_LAYOUT = REPO / "examples" / "pets09_bench.yaml"
HOLDOUT_LAYOUTS = sorted((REPO / "examples").glob("pets09_holdout*.yaml"))
"""Layouts not used to choose any default (``benchmarks/counting.py --holdout``)."""
FPS = 7.0
MAX_DROPPED = 0.02


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


THREAD_KINDS = ("inference", "camera", "decode", "other")


def _thread_kind(name: str) -> str:
    if name.startswith("inference-"):
        return "inference"  # the InferenceService's threads: session.run and hand-offs
    if name.startswith("camera-") and name != "camera-reports":
        return "camera"  # postprocess, tracker, zones, store writes of each camera
    if name == "frame-decode":
        return "decode"  # decode, motion, letterbox (run_pipeline's prefetch thread)
    return "other"  # onnxruntime's own, the store, reports, this benchmark


def thread_cpu() -> dict[int, tuple[str, float]]:
    """CPU seconds of each live thread of this process, by native id, with its kind
    (Linux ``/proc``; empty elsewhere)."""
    names = {thread.native_id: thread.name for thread in threading.enumerate()}
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    found: dict[int, tuple[str, float]] = {}
    try:
        tids = os.listdir("/proc/self/task")
    except OSError:
        return found
    for tid in tids:
        try:
            fields = Path(f"/proc/self/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the thread ended
        kind = _thread_kind(names.get(int(tid), ""))
        found[int(tid)] = (kind, (int(fields[11]) + int(fields[12])) / tick)
    return found


class ThreadCpu:
    """Per-kind CPU seconds of the threads over a window; threads that start or end
    inside it are caught by sampling every ``period`` seconds."""

    def __init__(self, period: float = 2.0) -> None:
        self._first = thread_cpu()
        self._last = dict(self._first)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, args=(period,), daemon=True)
        self._thread.start()

    def _poll(self, period: float) -> None:
        while not self._stop.wait(period):
            self._last.update(thread_cpu())

    def stop(self) -> dict[str, float]:
        self._stop.set()
        self._thread.join()
        self._last.update(thread_cpu())
        totals = dict.fromkeys(THREAD_KINDS, 0.0)
        for tid, (kind, seconds) in self._last.items():
            totals[kind] += seconds - self._first.get(tid, (kind, 0.0))[1]
        return totals


PARTS: tuple[tuple[str, str, str, str], ...] = (
    ("motion", "storesense.vision.motion", "MotionDetector", "update"),
    ("letterbox", "storesense.vision.detector", "Detector", "preprocess"),
    ("session.run", "storesense.vision.detector", "Detector", "run"),
    ("postprocess", "storesense.vision.detector", "Detector", "postprocess"),
    ("tracker", "storesense.vision.tracking.tracker", "Tracker", "update"),
    ("zones", "storesense.zones.camera", "CameraAnalytics", "update"),
    ("store writes", "storesense.api.runtime.worker", "CameraWorker", "write"),
    ("store writes", "storesense.api.runtime.worker", "StoreSink", "_write_counts"),
)
"""``--parts``: (label, module, class, method) whose CPU time is summed per label."""


class PartCpu:
    """CPU seconds (``time.thread_time``, so waits do not count) spent in each of
    :data:`PARTS` while measuring: the methods are wrapped on :meth:`start` and restored
    on :meth:`stop` (each call then costs about a microsecond more)."""

    def __init__(self) -> None:
        self._saved: list[tuple[type, str, Any]] = []
        self._totals: list[dict[str, float]] = []
        self._local = threading.local()
        self._lock = threading.Lock()

    def _mine(self) -> dict[str, float]:
        mine: dict[str, float] | None = getattr(self._local, "totals", None)
        if mine is None:
            mine = self._local.totals = {}
            with self._lock:
                self._totals.append(mine)
        return mine

    def start(self) -> None:
        import importlib

        for label, module, class_name, method in PARTS:
            cls = getattr(importlib.import_module(module), class_name)
            original = cls.__dict__[method]
            self._saved.append((cls, method, original))
            setattr(cls, method, self._timed(label, original))

    def _timed(self, label: str, original: Any) -> Any:
        clock = time.thread_time

        def timed(*args: Any, **kwargs: Any) -> Any:
            start = clock()
            try:
                return original(*args, **kwargs)
            finally:
                totals = self._mine()
                totals[label] = totals.get(label, 0.0) + clock() - start

        return timed

    def stop(self) -> dict[str, float]:
        for cls, method, original in reversed(self._saved):
            setattr(cls, method, original)
        self._saved.clear()
        summed = {label: 0.0 for label, *_ in PARTS}
        with self._lock:
            for totals in self._totals:
                for label, seconds in totals.items():
                    summed[label] += seconds
        return summed


# ------------------------------------------------------------------ clips
def read_pets(keep: Any = None) -> list[npt.NDArray[np.uint8]]:
    """PETS09 frames (0-based indices for which ``keep(index)`` is true; all by default)."""
    capture = cv2.VideoCapture(str(PETS))
    frames = []
    index = 0
    while capture.grab():
        if keep is None or keep(index):
            ok, image = capture.retrieve()
            if ok:
                frames.append(np.asarray(image, np.uint8))
        index += 1
    capture.release()
    return frames


QUIET_ROTATIONS = 4


def build_quiet_clips(folder: Path, *, empty_s: float = 40.0, people_s: float = 20.0) -> list[Path]:
    """The quiet clip: the empty plaza (median of the video) for ``empty_s``, then
    ``people_s`` of the real video (people walking through); sensor noise (sigma 3) and
    a slow lighting drift (+-12 %) on every frame. Written ``QUIET_ROTATIONS`` times,
    each starting a quarter of the loop later, so that N cameras side by side see every
    part of the loop at once (a row's seconds then measure the clip's average)."""
    first_people = 300  # a busy stretch of the plaza
    n_empty, n_people = round(empty_s * FPS), round(people_s * FPS)
    empty = np.median(np.stack(read_pets(lambda i: i % 8 == 0)), axis=0).astype(np.float32)
    people = read_pets(lambda i: first_people <= i < first_people + n_people)
    length = n_empty + n_people
    height, width = people[0].shape[:2]
    fourcc = cv2.VideoWriter_fourcc(*"MP43")  # type: ignore[attr-defined]
    clips = []
    for rotation in range(QUIET_ROTATIONS):
        target = folder / f"quiet-{rotation}.avi"
        writer = cv2.VideoWriter(str(target), fourcc, FPS, (width, height))
        for step in range(length):
            k = (step + rotation * length // QUIET_ROTATIONS) % length
            scene = empty if k < n_empty else people[k - n_empty].astype(np.float32)
            gain = 1.0 + 0.12 * math.sin(2 * math.pi * k / length)
            rng = np.random.default_rng(k)  # the same noise for frame k in every rotation
            noisy = scene * gain + rng.normal(0.0, 3.0, scene.shape).astype(np.float32)
            writer.write(np.clip(noisy, 0, 255).astype(np.uint8))
        writer.release()
        clips.append(target)
    return clips


# ------------------------------------------------------------------ layouts
def bench_shapes() -> dict[str, Any]:
    return dict(yaml.safe_load(BENCH_LAYOUT.read_text()))


def layout_for(
    tag: str,
    clips: list[Path],
    cameras: int,
    gate: bool,
    shapes: dict[str, Any],
    regions: tuple[int, ...] = (),
) -> dict[str, Any]:
    """N cameras on ``clips`` (in turn), each with the bench layout's 10 zones and 10 lines."""
    cams, zones, lines = [], [], []
    for i in range(cameras):
        camera_id = f"{tag}-c{i}"
        clip = clips[i % len(clips)]
        motion = {"enabled": gate, "region_input_sizes": list(regions)}
        cams.append({"id": camera_id, "source": str(clip), "fps": FPS, "motion": motion})
        for zone in shapes["zones"]:
            zones.append({**zone, "id": f"{camera_id}-{zone['id']}", "camera": camera_id})
        for line in shapes["lines"]:
            lines.append({**line, "id": f"{camera_id}-{line['id']}", "camera": camera_id})
    return {"store": {"id": tag}, "cameras": cams, "zones": zones, "lines": lines}


# ------------------------------------------------------------------ detector-only
@dataclass
class Engine:
    """The detector setup of one mode: what the pipelines get and how session.run is called."""

    name: str
    target: Any
    """``Detector`` or ``InferenceService`` handed to ``pipeline_factory_for``."""
    callers: int
    """Threads calling ``session.run`` at once (service threads, or 1 per direct call)."""

    def detector(self) -> Any:
        return getattr(self.target, "detector", self.target)


def make_engine(name: str) -> Engine:
    from storesense.vision.detector import Detector
    from storesense.vision.inference import InferenceService, default_workers

    if name == "shared":
        service = InferenceService(Detector.from_model("yolox-nano", intra_op_threads=1))
        return Engine(name, service, default_workers())
    if name == "direct":
        return Engine(name, Detector.from_model("yolox-nano"), 1)
    raise ValueError(f"unknown inference mode {name!r} (shared, direct)")


def detector_only_ms(
    engine: Engine, tensors: list[npt.NDArray[np.float32]], seconds: float
) -> float:
    """CPU-ms a frame of bare ``session.run`` calls, from ``engine.callers`` threads at once."""
    detector = engine.detector()
    stop = threading.Event()
    counts = [0] * engine.callers

    def call(k: int) -> None:
        i = k
        while not stop.is_set():
            detector.run(tensors[i % len(tensors)][None])
            counts[k] += 1
            i += engine.callers

    threads = [threading.Thread(target=call, args=(k,)) for k in range(engine.callers)]
    cpu0 = cpu_seconds()
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    return 1000.0 * (cpu_seconds() - cpu0) / max(1, sum(counts))


# ------------------------------------------------------------------ one row
def metric(name: str, labels: dict[str, str]) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


WALL_STAGES = ("preprocess", "postprocess", "tracker", "zones", "store")


def stage_seconds(camera_ids: list[str]) -> dict[str, float]:
    """Wall seconds recorded so far per stage (``storesense_stage_seconds``), all cameras."""
    return {
        stage: sum(
            metric("storesense_stage_seconds_sum", {"camera": c, "stage": stage})
            for c in camera_ids
        )
        for stage in WALL_STAGES
    }


def camera_totals(camera_ids: list[str]) -> tuple[float, float, float]:
    processed = sum(metric("storesense_frames_processed_total", {"camera": c}) for c in camera_ids)
    dropped = sum(
        metric("storesense_frames_dropped_total", {"camera": c, "reason": "late"})
        for c in camera_ids
    )
    detected = sum(
        metric("storesense_stage_seconds_count", {"camera": c, "stage": "inference"})
        for c in camera_ids
    )
    return processed, dropped, detected


@dataclass
class Row:
    clip: str
    inference: str
    gate: bool
    cameras: int
    processed_fps: float
    dropped: float
    detected: float
    cpu_ms: float
    detector_ms: float
    cores: float
    region: float = 0.0
    """Share of the detector runs made on a crop (region-gated detection)."""
    threads_ms: dict[str, float] | None = None
    """CPU-ms a processed frame by kind of thread (``THREAD_KINDS``)."""
    stages_ms: dict[str, float] | None = None
    """Wall ms a processed frame per stage (``WALL_STAGES``; includes waits for the GIL,
    and the store its disk syncs: not CPU)."""
    parts_ms: dict[str, float] | None = None
    """CPU ms a processed frame in each of :data:`PARTS` (``--parts``)."""

    @property
    def ratio(self) -> float:
        return self.cpu_ms / self.detector_ms if self.detector_ms else float("nan")


def run_row(
    folder: Path,
    clip_name: str,
    clips: list[Path],
    engine: Engine,
    cameras: int,
    gate: bool,
    seconds: float,
    warmup: float,
    tensors: list[npt.NDArray[np.float32]],
    shapes: dict[str, Any],
    prefetch: int = 2,
    regions: tuple[int, ...] = (),
    opencv_threads: int | None = 1,
    parts: bool = False,
) -> Row:
    from storesense.api.runtime import WorkerSupervisor, pipeline_factory_for
    from storesense.api.settings import ServiceSettings
    from storesense.api.store import open_store
    from storesense.zones.config import parse_layout

    detector_ms = detector_only_ms(engine, tensors, 3.0)
    tag = f"{clip_name}-{engine.name}-{'gate' if gate else 'all'}-{cameras}-{time.monotonic_ns()}"
    layout = parse_layout(layout_for(tag, clips, cameras, gate, shapes, regions))
    store = open_store(f"sqlite:///{folder / (tag + '.db')}", tag)
    settings = ServiceSettings(
        realtime=True,
        loop_sources=True,
        status_print_s=0,
        decode_prefetch=prefetch,
        opencv_threads=opencv_threads,
    )
    factory = pipeline_factory_for(engine.target)
    pipelines: list[Any] = []

    def kept_factory(camera: Any) -> Any:
        pipeline = factory(camera)
        pipelines.append(pipeline)
        return pipeline

    supervisor = WorkerSupervisor(layout, store, settings, pipeline_factory=kept_factory)
    camera_ids = [camera.id for camera in layout.cameras]
    supervisor.start(watch_layout=False)
    try:
        time.sleep(warmup)
        processed0, dropped0, detected0 = camera_totals(camera_ids)
        runs0, stages0 = region_runs(pipelines), stage_seconds(camera_ids)
        by_part = PartCpu() if parts else None
        if by_part is not None:
            by_part.start()
        cpu0, wall0, by_thread = cpu_seconds(), time.perf_counter(), ThreadCpu()
        time.sleep(seconds)
        processed1, dropped1, detected1 = camera_totals(camera_ids)
        cpu, wall = cpu_seconds() - cpu0, time.perf_counter() - wall0
        split = by_thread.stop()
        part_seconds = by_part.stop() if by_part is not None else None
        runs1, stages1 = region_runs(pipelines), stage_seconds(camera_ids)
    finally:
        supervisor.stop()
        store.close()
    processed = processed1 - processed0
    dropped = dropped1 - dropped0
    return Row(
        clip=clip_name,
        inference=engine.name,
        gate=gate,
        cameras=cameras,
        processed_fps=processed / wall,
        dropped=dropped / max(1.0, processed + dropped),
        detected=(detected1 - detected0) / max(1.0, processed),
        cpu_ms=1000.0 * cpu / max(1.0, processed),
        detector_ms=detector_ms,
        cores=cpu / wall,
        region=(runs1[0] - runs0[0]) / max(1, runs1[1] - runs0[1]),
        threads_ms={k: 1000.0 * v / max(1.0, processed) for k, v in split.items()},
        stages_ms={
            k: 1000.0 * (stages1[k] - stages0[k]) / max(1.0, processed) for k in WALL_STAGES
        },
        parts_ms=None
        if part_seconds is None
        else {k: 1000.0 * v / max(1.0, processed) for k, v in part_seconds.items()},
    )


def region_runs(pipelines: list[Any]) -> tuple[int, int]:
    """(crop detections, all detections) of the pipelines so far."""
    crops = sum(getattr(p, "region_runs", 0) for p in pipelines)
    return crops, sum(p.detector_runs for p in pipelines)


def split_text(row: Row) -> str:
    if not row.threads_ms:
        return "-"
    return "/".join(f"{row.threads_ms[kind]:.1f}" for kind in THREAD_KINDS)


# ------------------------------------------------------------------ counts
def count_clip(
    clip: Path,
    gate: bool,
    detector: Any,
    layout_path: Path = BENCH_LAYOUT,
    regions: tuple[int, ...] = (),
) -> tuple[dict[str, Any], float, int]:
    """One pass of ``storesense count``'s path over ``clip`` (not paced) with the zones and
    lines of ``layout_path``; summary, the fraction of frames the detector ran on, and how
    many of those runs were on a crop."""
    from storesense.api.runtime import summarise_frames
    from storesense.vision.pipeline import CameraPipeline, run_pipeline
    from storesense.vision.sources import open_source
    from storesense.zones.camera import CameraAnalytics
    from storesense.zones.config import parse_layout

    shapes = dict(yaml.safe_load(layout_path.read_text()))
    layout = parse_layout(
        {
            "store": {"id": "counts"},
            "cameras": [{"id": "cam1", "source": str(clip), "fps": FPS}],
            "zones": shapes["zones"],
            "lines": shapes["lines"],
        }
    )
    camera = layout.camera("cam1")
    motion = camera.motion.model_copy(update={"enabled": gate, "region_input_sizes": regions})
    pipeline = CameraPipeline(detector, camera.tracker, motion=motion)
    analytics = CameraAnalytics(layout, "cam1", run_id="counts")

    def frames() -> Iterator[tuple[npt.NDArray[np.uint8], Any]]:
        with open_source(clip, camera_id="cam1", fps=FPS) as source:
            for frame, tracks in run_pipeline(source, pipeline):
                yield frame.image, tracks

    summary = summarise_frames(layout, "cam1", frames(), analytics).to_dict()
    return summary, pipeline.detector_runs / max(1, pipeline.stats.frames), pipeline.region_runs


def count_frames(clip: Path) -> int:
    capture = cv2.VideoCapture(str(clip))
    frames = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    capture.release()
    return frames


def count_totals(summary: dict[str, Any]) -> dict[str, float]:
    lines = summary["lines"]
    zones = summary["zones"]
    return {
        "line crossings": sum(sum(counts.values()) for counts in lines.values()),
        "zone entries": sum(zone["entries"] for zone in zones.values()),
        "dwell s": sum(zone["dwell_seconds_total"] for zone in zones.values()),
    }


def largest_difference(on: dict[str, Any], off: dict[str, Any]) -> int:
    """Largest difference of one line direction or one zone's entries, in events."""
    worst = 0
    for line_id, counts in off["lines"].items():
        for direction, value in counts.items():
            worst = max(worst, abs(value - on["lines"][line_id].get(direction, 0)))
    for zone_id, zone in off["zones"].items():
        worst = max(worst, abs(zone["entries"] - on["zones"][zone_id]["entries"]))
    return worst


# ------------------------------------------------------------------ main
def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--cameras", default="1,6,10,12,14,16", help="camera counts to run")
    parser.add_argument("--seconds", type=float, default=20.0, help="measured seconds a row")
    parser.add_argument("--warmup", type=float, default=4.0, help="seconds before measuring")
    parser.add_argument("--clips", default="busy,quiet", help="busy, quiet or both")
    parser.add_argument("--gate", default="on,off", help="motion gate: on, off or both")
    parser.add_argument("--inference", default="shared", help="shared, direct or both")
    parser.add_argument(
        "--quiet-empty", type=float, default=40.0, help="quiet clip: seconds of empty plaza"
    )
    parser.add_argument(
        "--quiet-people", type=float, default=20.0, help="quiet clip: seconds of people"
    )
    parser.add_argument(
        "--prefetch",
        type=int,
        default=2,
        help="serve's decode_prefetch (0: decode on the camera thread, no decode thread)",
    )
    parser.add_argument(
        "--regions",
        default="",
        help="motion.region_input_sizes with the gate on, e.g. 256,320 (default: none, "
        "the layout default: whole-frame detection only)",
    )
    parser.add_argument(
        "--cv2-threads",
        default=None,
        help="serve's opencv_threads (cv2.setNumThreads when the workers start; default: "
        "serve's default, 1); 'off': OpenCV's own, one thread a core",
    )
    parser.add_argument(
        "--parts",
        action="store_true",
        help="also print the CPU ms a frame of each part of the per-frame path (motion, "
        "letterbox, session.run, postprocess, tracker, zones, store writes, the rest)",
    )
    parser.add_argument(
        "--no-counts", dest="counts", action="store_false", help="skip the gate on/off counts"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    try:
        camera_counts = [int(n) for n in args.cameras.split(",")]
        clips = args.clips.split(",")
        gates = [{"on": True, "off": False}[g] for g in args.gate.split(",")]
        modes = args.inference.split(",")
        regions = tuple(int(size) for size in args.regions.split(",") if size)
    except (ValueError, KeyError) as exc:
        parser.error(f"bad list: {exc}")
    from storesense.api.settings import ServiceSettings

    opencv_threads = ServiceSettings().opencv_threads
    if args.cv2_threads is not None:
        try:
            opencv_threads = None if args.cv2_threads == "off" else int(args.cv2_threads)
        except ValueError:
            parser.error(f"--cv2-threads: a number or 'off', got {args.cv2_threads!r}")
    if not PETS.is_file():
        print(f"missing {PETS}: the benchmark needs ../shared", file=sys.stderr)
        return 2
    from storesense.vision.detector import Detector

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        os.environ.setdefault("STORESENSE_CACHE", str(folder / "cache"))
        clip_paths = {"busy": [PETS]}
        if "quiet" in clips:
            clip_paths["quiet"] = build_quiet_clips(
                folder, empty_s=args.quiet_empty, people_s=args.quiet_people
            )
            loop = args.quiet_empty + args.quiet_people
            print(
                f"quiet clip: {args.quiet_empty:g} s empty + {args.quiet_people:g} s people, "
                f"looped: people in {args.quiet_people / loop:.0%} of the time (duty cycle)"
            )
            quarter = loop / QUIET_ROTATIONS
            if args.seconds < quarter:
                print(
                    f"note: --seconds {args.seconds:g} < a quarter of the quiet loop "
                    f"({quarter:g} s): quiet rows see only part of the loop, not its average"
                )
        probe = Detector.from_model("yolox-nano", intra_op_threads=1)
        tensors = [probe.preprocess(image)[0] for image in read_pets(lambda i: i < 32)]
        shapes = bench_shapes()
        print(
            f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start; "
            f"clips paced at {FPS:g} fps, {args.seconds:g} s a row after {args.warmup:g} s; "
            f"OpenCV threads {cv2.getNumThreads() if opencv_threads is None else opencv_threads}"
        )
        header = (
            f"{'clip':<6} {'inference':<9} {'gate':<4} {'cams':>4} {'wanted fps':>10} "
            f"{'done fps':>8} {'dropped':>8} {'detected':>8} {'CPU ms/fr':>9} "
            f"{'det-only ms':>11} {'ratio':>6} {'cores':>5} {'crops':>6} "
            f"{'inf/cam/dec/oth ms':>20}"
        )
        print("\n" + header)
        rows: list[Row] = []
        for mode in modes:
            engine = make_engine(mode)
            for clip_name in clips:
                for gate in gates:
                    for cameras in camera_counts:
                        row = run_row(
                            folder, clip_name, clip_paths[clip_name], engine, cameras,
                            gate, args.seconds, args.warmup, tensors, shapes, args.prefetch,
                            regions, opencv_threads, args.parts,
                        )  # fmt: skip
                        rows.append(row)
                        print(
                            f"{row.clip:<6} {row.inference:<9} {'on' if gate else 'off':<4} "
                            f"{cameras:>4} {cameras * FPS:>10.0f} {row.processed_fps:>8.1f} "
                            f"{row.dropped:>8.1%} {row.detected:>8.0%} {row.cpu_ms:>9.1f} "
                            f"{row.detector_ms:>11.1f} {row.ratio:>6.2f} {row.cores:>5.2f} "
                            f"{row.region:>6.0%} {split_text(row):>20}",
                            flush=True,
                        )
                        if row.stages_ms:
                            print(
                                "       wall ms/fr by stage: "
                                + ", ".join(f"{k} {v:.2f}" for k, v in row.stages_ms.items())
                            )
                        if row.parts_ms:
                            rest = row.cpu_ms - sum(row.parts_ms.values())
                            print(
                                "       CPU ms/fr by part: "
                                + ", ".join(f"{k} {v:.2f}" for k, v in row.parts_ms.items())
                                + f", the rest {rest:.2f} (decode, hand-offs, metrics, ...)"
                            )
            close = getattr(engine.target, "close", None)
            if callable(close):
                close()
        print(f"\nlargest camera count run with < {MAX_DROPPED:.0%} of frames dropped:")
        for mode in modes:
            for clip_name in clips:
                for gate in gates:
                    kept = [
                        r.cameras
                        for r in rows
                        if (r.inference, r.clip, r.gate) == (mode, clip_name, gate)
                        and r.dropped < MAX_DROPPED
                    ]
                    best = max(kept) if kept else 0
                    print(
                        f"  {clip_name:<6} {mode:<7} gate {'on ' if gate else 'off'}: "
                        f"{best} cameras (of {', '.join(map(str, camera_counts))} run)"
                    )
        print(
            "  CPU ms/fr: whole process (all threads) per processed frame; det-only ms: bare "
            "session.run, same model and threads, same run; ratio = CPU ms/fr / det-only ms; "
            "detected: frames the detector ran on; crops: share of those runs on a crop "
            "(region-gated detection, smaller model); inf/cam/dec/oth ms: CPU ms/fr by "
            "thread: inference service, camera workers (postprocess, tracker, zones, store), "
            "decode threads (decode, motion, letterbox), the rest"
        )
        if args.counts:
            print("\ncounts, gate on vs off (every frame, not paced):")
            print(
                f"{'clip':<6} {'layout':<18} {'gate':<4} {'detected':>8} {'crops':>6} "
                f"{'line crossings':>14} {'zone entries':>12} {'dwell s':>9} {'largest diff':>12}"
            )
            runs = [(name, BENCH_LAYOUT) for name in clips]
            if "busy" in clips:  # the held-out layouts, on the real video only
                runs += [("busy", path) for path in HOLDOUT_LAYOUTS]
            for clip_name, layout_path in runs:
                clip = clip_paths[clip_name][0]
                off, ran_off, _ = count_clip(clip, False, probe, layout_path)
                on, ran_on, crops = count_clip(clip, True, probe, layout_path, regions)
                frames = count_frames(clip)
                crop_share = crops / max(1.0, ran_on * frames)
                for gate_name, summary, ran, share in (
                    ("off", off, ran_off, 0.0),
                    ("on", on, ran_on, crop_share),
                ):
                    totals = count_totals(summary)
                    diff = largest_difference(summary, off) if gate_name == "on" else 0
                    print(
                        f"{clip_name:<6} {layout_path.stem:<18} {gate_name:<4} {ran:>8.0%} "
                        f"{share:>6.0%} "
                        f"{totals['line crossings']:>14.0f} {totals['zone entries']:>12.0f} "
                        f"{totals['dwell s']:>9.1f} {diff:>12d}",
                        flush=True,
                    )
            print("  largest diff: the largest difference of one line direction or one zone's")
            print("  entries between gate on and gate off (the target: at most 1 event)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
