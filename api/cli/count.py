"""`storesense count`: zone and line counts over a video, events as JSON lines."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from storesense.api.cli import CLIError

EXAMPLES = """\
  storesense count ../shared/data/PETS09-S2L1/PETS09-S2L1.avi --fps 7 \\
      --layout examples/pets09.yaml --events events.jsonl
  storesense count --layout store.yaml --camera entrance --heatmap heat.png
"""


def register(subparsers: Any) -> None:
    from storesense.api.cli import (
        CAMERA_HELP,
        add_command,
        add_frame_rate_options,
        add_layout_option,
    )

    parser = add_command(
        subparsers,
        "count",
        examples=EXAMPLES,
        help="count zone entries/exits and line crossings in a video",
        description="Run detection, tracking and the store layout's zones and lines over a "
        "video; write one JSON event a line and print a JSON summary.",
    )
    parser.add_argument(
        "source",
        nargs="?",
        default=None,
        help="video file, image folder or stream URL (default: the camera's source)",
    )
    add_layout_option(parser)
    parser.add_argument(
        "--camera",
        default=None,
        metavar="ID",
        help=f"the camera to count, {CAMERA_HELP} (default: the layout's first camera)",
    )
    parser.add_argument(
        "--events",
        type=Path,
        default=None,
        metavar="FILE",
        help="write events here, JSON lines (default: not written)",
    )
    parser.add_argument(
        "--model", default="yolox-nano", metavar="NAME|PATH", help="model name or .onnx path"
    )
    add_frame_rate_options(parser)
    parser.add_argument(
        "--run-id", default="", help="goes into event ids, to tell runs apart (default: none)"
    )
    parser.add_argument(
        "--find-masks",
        type=float,
        default=None,
        metavar="SECONDS",
        help="also report person detections that did not move for SECONDS (candidate masks) "
        "(default: off)",
    )
    parser.add_argument(
        "--heatmap",
        type=Path,
        default=None,
        metavar="OUT",
        help="write person-seconds per cell to OUT (.csv, .npy or .png); floor metres when "
        "the camera has a homography, else image pixels (default: off)",
    )
    parser.add_argument(
        "--heatmap-cell",
        type=float,
        default=None,
        metavar="SIZE",
        help="heatmap cell size: metres with a homography (default 0.5), else pixels (16)",
    )
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from storesense.api.cli import load_layout_file
    from storesense.api.runtime.count import count_video
    from storesense.zones.floorplan import HEATMAP_SUFFIXES, heatmap_for_camera
    from storesense.zones.masks import StaticDetectionFinder

    layout = load_layout_file(args.layout)
    camera_id = args.camera or layout.cameras[0].id
    try:
        camera = layout.camera(camera_id)
    except ValueError as exc:
        raise CLIError(f"--camera: {exc}") from None
    source = args.source or camera.source
    if not source:
        raise CLIError(f"no source: give SOURCE or set cameras[].source for {camera_id!r}")
    for name in ("fps", "sample_fps", "find_masks", "heatmap_cell"):
        value = getattr(args, name)
        if value is not None and not value > 0:
            raise CLIError(f"--{name.replace('_', '-')} must be > 0, got {value}")
    if args.heatmap is not None and args.heatmap.suffix.lower() not in HEATMAP_SUFFIXES:
        raise CLIError(f"--heatmap must end in .csv, .npy or .png, got {args.heatmap.name!r}")

    from storesense.vision.detector import Detector
    from storesense.vision.sources import SourceError

    try:
        detector = Detector.from_model(args.model)
    except (OSError, ValueError, KeyError) as exc:
        raise CLIError(f"cannot load model {args.model!r}: {exc}") from None
    try:
        heatmap = heatmap_for_camera(layout, camera_id, args.heatmap_cell)
    except ValueError as exc:
        raise CLIError(f"--heatmap-cell: {exc}") from None
    if args.heatmap is not None:
        try:
            args.heatmap.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CLIError(f"cannot write {args.heatmap}: {exc.strerror}") from None
    finder = StaticDetectionFinder(min_seconds=args.find_masks) if args.find_masks else None
    events_file = None
    if args.events is not None:
        try:
            args.events.parent.mkdir(parents=True, exist_ok=True)
            events_file = args.events.open("w", encoding="utf-8")
        except OSError as exc:
            raise CLIError(f"cannot write {args.events}: {exc.strerror}") from None
    try:
        summary = count_video(
            layout,
            camera_id,
            detector,
            source=str(source),
            fps=args.fps,
            sample_fps=args.sample_fps,
            run_id=args.run_id,
            static_finder=finder,
            heatmap=heatmap,
            sink=(lambda event: events_file.write(event.to_json() + "\n")) if events_file else None,
        )
    except (SourceError, ValueError) as exc:
        raise CLIError(str(exc)) from None
    finally:
        if events_file is not None:
            events_file.close()
    result = summary.to_dict()
    result["camera"] = camera_id
    if finder is not None:
        result["mask_candidates"] = [
            {
                "polygon": c.polygon(),
                "seconds": round(c.seconds, 1),
                "seen_fraction": round(c.seen_fraction, 2),
            }
            for c in finder.candidates()
        ]
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    if args.heatmap is not None:
        try:
            heatmap.write(args.heatmap)
        except (OSError, ValueError) as exc:
            raise CLIError(f"cannot write {args.heatmap}: {exc}") from None
    return 0
