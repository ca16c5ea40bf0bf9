"""``storesense track``: detect and track people in a video, write MOTChallenge boxes.

Example::

    storesense track PETS09-S2L1.avi --fps 7 --out pets09.txt

Each output line is one confirmed track box:
``frame,id,left,top,width,height,score,-1,-1,-1`` with ``frame`` 1-based in
decoded order, so the file can be scored against MOTChallenge ground truth.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from storesense.api.cli import CLIError
from storesense.models.registry import DEFAULT_DETECTOR, REGISTRY, ModelFormat
from storesense.vision.detections import Tracks

if TYPE_CHECKING:
    from storesense.api.runtime.runner import CameraAnalyticsLike, FrameResult
    from storesense.zones.config import StoreLayout
    from storesense.zones.events import Event


def register(subparsers: Any) -> None:
    from storesense.api.cli import CAMERA_HELP, add_command, add_frame_rate_options

    parser = add_command(
        subparsers,
        "track",
        examples="  storesense track ../shared/data/PETS09-S2L1/PETS09-S2L1.avi --fps 7 "
        "--out pets09.txt\n  storesense track rtsp://cam.local/stream --out live.txt "
        "--providers auto\n",
        help="track people in a video and write MOTChallenge boxes",
        description="Detect and track people in a video file, image folder or stream URL; write "
        "confirmed tracks as MOTChallenge lines frame,id,left,top,width,height,score,-1,-1,-1.",
    )
    parser.add_argument("source", metavar="SOURCE", help="video file, image folder or stream URL")
    parser.add_argument("--out", required=True, type=Path, metavar="FILE", help="output text file")
    parser.add_argument(
        "--model",
        default=DEFAULT_DETECTOR,
        metavar="NAME|PATH",
        help=f"registered model name or an ONNX file (default {DEFAULT_DETECTOR})",
    )
    parser.add_argument(
        "--format",
        choices=[ModelFormat.YOLOX.value, ModelFormat.YOLOV8.value],
        default=None,
        help="output decoder of an ONNX file given by path (default yolox)",
    )
    add_frame_rate_options(parser)
    parser.add_argument(
        "--camera",
        default="cam",
        metavar="ID",
        help=f"{CAMERA_HELP}; track needs no layout and tags the frames with it",
    )
    parser.add_argument(
        "--providers",
        default="cpu",
        help="onnxruntime execution providers: cpu, auto, or a comma-separated list",
    )
    parser.add_argument(
        "--no-progress", action="store_true", help="no progress bar on stderr (default: shown)"
    )
    parser.set_defaults(func=_run)


def _load_detector(args: argparse.Namespace) -> Any:
    from storesense.models.fetch import FetchError
    from storesense.vision.detector import Detector

    if args.model not in REGISTRY and not Path(args.model).is_file():
        known = ", ".join(sorted(REGISTRY))
        raise CLIError(f"unknown model {args.model!r}: not a registered name ({known}) nor a file")
    providers = args.providers.split(",") if "," in args.providers else args.providers
    try:
        return Detector.from_model(args.model, args.format, providers=providers)
    except (FetchError, ValueError, FileNotFoundError) as exc:
        raise CLIError(str(exc).splitlines()[0]) from None


def write_mot_lines(out: IO[str], frame_index: int, tracks: Tracks) -> int:
    """Write one MOTChallenge line per track box of one frame; returns the number written."""
    for (left, top, right, bottom), track_id, score in zip(
        tracks.xyxy.tolist(), tracks.track_id.tolist(), tracks.confidence.tolist(), strict=True
    ):
        out.write(
            f"{frame_index},{track_id},{left:.2f},{top:.2f},{right - left:.2f},"
            f"{bottom - top:.2f},{score:.4f},-1,-1,-1\n"
        )
    return len(tracks)


class MotSink:
    """The camera runner's sink for ``track``: MOT lines, a progress bar, totals."""

    def __init__(self, out: IO[str], progress: Any) -> None:
        self.out = out
        self.progress = progress
        self.frames = self.boxes = 0
        self.track_ids: set[int] = set()

    def started(self, layout: StoreLayout | None, analytics: CameraAnalyticsLike) -> None:
        """No analytics: nothing to set up."""

    def frame(self, result: FrameResult) -> None:
        index = result.frame.index if result.frame is not None else self.frames + 1
        self.boxes += write_mot_lines(self.out, index, result.tracks)
        self.track_ids.update(result.tracks.track_id.tolist())
        self.frames += 1
        self.progress.update(1)

    def finished(self, events: list[Event], end: float, *, final: bool) -> None:
        """No analytics: no events."""


def _run(args: argparse.Namespace) -> int:
    # FFmpeg prints a line per damaged packet; our own warnings already say what was skipped.
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
    from storesense.api.runtime.runner import CameraRunner
    from storesense.vision.pipeline import CameraPipeline
    from storesense.vision.sources import SourceError, open_source
    from tqdm import tqdm

    try:
        source = open_source(
            args.source, camera_id=args.camera, fps=args.fps, sample_fps=args.sample_fps
        )
    except (SourceError, ValueError) as exc:
        raise CLIError(str(exc)) from None
    with source:
        pipeline = CameraPipeline(_load_detector(args))
        try:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            out = args.out.open("w", encoding="utf-8")
        except OSError as exc:
            raise CLIError(f"cannot write {args.out}: {exc.strerror or exc}") from None
        total = source.frame_count
        if total is not None and args.sample_fps and source.fps:
            total = min(total, int(total / source.fps * args.sample_fps) + 1)
        progress = tqdm(
            total=total,
            unit="frame",
            file=sys.stderr,
            disable=args.no_progress or total is None,
            leave=False,
        )
        mot = MotSink(out, progress)
        start = time.perf_counter()
        try:
            with out, progress:
                CameraRunner(args.camera, mot).run(source, pipeline)
        except SourceError as exc:
            raise CLIError(str(exc)) from None
        except OSError as exc:
            raise CLIError(f"cannot write {args.out}: {exc.strerror or exc}") from None
        elapsed = time.perf_counter() - start
    rate = mot.frames / elapsed if elapsed > 0 else 0.0
    print(
        f"{mot.frames} frames, {len(mot.track_ids)} tracks, {mot.boxes} boxes -> {args.out} "
        f"({rate:.1f} fps, {elapsed:.1f} s)"
    )
    return 0
