"""``storesense track`` and the camera pipeline on the first 40 frames of PETS09."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from itertools import islice
from pathlib import Path

import cv2
import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment
from storesense.api.cli import main
from storesense.vision.detections import Detections
from storesense.vision.detector import Detector
from storesense.vision.frames import Frame
from storesense.vision.pipeline import STAGES, CameraPipeline, PipelineStats, run_pipeline
from storesense.vision.sources import SourceError, open_source

CLIP_FRAMES = 40


@pytest.fixture(scope="module")
def clip(pets09: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first 40 PETS09 frames as an MJPG AVI whose header says the true 7 fps."""
    path = tmp_path_factory.mktemp("clip") / "pets09_40.avi"
    capture = cv2.VideoCapture(str(pets09 / "PETS09-S2L1.avi"))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 7, (768, 576))
    for _ in range(CLIP_FRAMES):
        ok, image = capture.read()
        assert ok
        writer.write(image)
    writer.release()
    capture.release()
    return path


def _read_mot(path: Path) -> np.ndarray:
    rows = [line.split(",") for line in path.read_text().splitlines()]
    assert rows, "no tracks written"
    assert all(len(row) == 10 for row in rows)
    assert all(row[7:] == ["-1", "-1", "-1"] for row in rows)
    assert all(row[0].isdigit() and row[1].isdigit() for row in rows)
    return np.array([[float(v) for v in row[:7]] for row in rows])


def test_track_writes_valid_mot_lines_that_follow_the_people(
    clip: Path, pets09: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out" / "tracks.txt"
    assert main(["track", str(clip), "--out", str(out), "--camera", "plaza"]) == 0
    summary = capsys.readouterr().out.strip().splitlines()
    assert len(summary) == 1 and summary[0].startswith(f"{CLIP_FRAMES} frames, ")
    mot = _read_mot(out)
    frames, ids = mot[:, 0].astype(int), mot[:, 1].astype(int)
    assert frames.min() >= 1 and frames.max() == CLIP_FRAMES
    assert np.all(np.diff(frames) >= 0)
    assert np.all(mot[:, 4:6] > 0) and np.all((mot[:, 6] > 0) & (mot[:, 6] <= 1))
    for frame in np.unique(frames):
        assert len(set(ids[frames == frame])) == (frames == frame).sum(), "duplicate id in a frame"
    # From frame 5 on, the tracks cover the ground-truth people (IoU >= 0.5).
    gt = np.loadtxt(pets09 / "gt" / "gt.txt", delimiter=",")
    matched = truths = 0
    for frame in range(5, CLIP_FRAMES + 1):
        truth = gt[gt[:, 0] == frame][:, 2:6]
        overlap = _iou_xywh(truth, mot[frames == frame][:, 2:6])
        rows, cols = linear_sum_assignment(-overlap)
        matched += int((overlap[rows, cols] >= 0.5).sum())
        truths += len(truth)
    assert matched >= 0.75 * truths, f"{matched} of {truths} ground-truth boxes tracked"
    # Identities hold: few more ids than people over the last 10 frames.
    people = len(np.unique(gt[(gt[:, 0] > CLIP_FRAMES - 10) & (gt[:, 0] <= CLIP_FRAMES), 1]))
    assert len(set(ids[frames > CLIP_FRAMES - 10])) <= people + 2


def _iou_xywh(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a_xyxy = np.c_[a[:, :2], a[:, :2] + a[:, 2:]]
    b_xyxy = np.c_[b[:, :2], b[:, :2] + b[:, 2:]]
    top_left = np.maximum(a_xyxy[:, None, :2], b_xyxy[None, :, :2])
    bottom_right = np.minimum(a_xyxy[:, None, 2:], b_xyxy[None, :, 2:])
    inter = np.prod(np.clip(bottom_right - top_left, 0, None), axis=2)
    union = np.prod(a[:, 2:], axis=1)[:, None] + np.prod(b[:, 2:], axis=1)[None, :] - inter
    return np.asarray(inter / union)


def test_track_with_sample_fps_keeps_decoded_frame_numbers(clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "sampled.txt"
    argv = ["track", str(clip), "--out", str(out), "--fps", "7", "--sample-fps", "3.5"]
    assert main([*argv, "--no-progress"]) == 0
    frames = set(_read_mot(out)[:, 0].astype(int).tolist())
    assert frames <= set(range(1, CLIP_FRAMES + 1, 2))  # every other frame: 1, 3, 5, ...
    assert len(frames) >= 15


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing", "video file not found"),
        ("not_video", "cannot open video"),
        ("unknown_model", "unknown model 'yolo-huge'"),
        ("not_onnx", "cannot load ONNX model"),
        ("bad_fps", "fps must be a positive number"),
        ("checksum", "checksum mismatch for yolox-nano"),
        ("no_network", "cannot download yolox-nano"),
        ("out_is_dir", "cannot write"),
        ("bad_provider", "execution providers ['NoSuchExecutionProvider'] not available"),
    ],
)
def test_bad_input_exits_non_zero_with_one_line(
    case: str,
    message: str,
    clip: Path,
    tmp_path: Path,
    model_mirror: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    source, out, extra = str(clip), tmp_path / "out.txt", []
    if case == "missing":
        source = str(tmp_path / "nothing.avi")
    elif case == "not_video":
        (tmp_path / "notes.avi").write_text("hello")
        source = str(tmp_path / "notes.avi")
    elif case == "unknown_model":
        extra = ["--model", "yolo-huge"]
    elif case == "not_onnx":
        (tmp_path / "fake.onnx").write_bytes(b"\x00" * 64)
        extra = ["--model", str(tmp_path / "fake.onnx")]
    elif case == "bad_fps":
        extra = ["--fps", "0"]
    elif case in ("checksum", "no_network"):
        monkeypatch.setenv("STORESENSE_CACHE", str(tmp_path / "empty-cache"))
        if case == "checksum":
            mirror = tmp_path / "mirror"
            mirror.mkdir()
            shutil.copyfile(model_mirror / "yolox_nano.onnx", mirror / "yolox_nano.onnx")
            with (mirror / "yolox_nano.onnx").open("ab") as handle:
                handle.write(b"tampered")
            monkeypatch.setenv("STORESENSE_MODEL_MIRROR", str(mirror))
        else:
            import dataclasses

            from storesense.models import registry

            monkeypatch.delenv("STORESENSE_MODEL_MIRROR")
            spec = dataclasses.replace(
                registry.REGISTRY["yolox-nano"], url=f"http://127.0.0.1:{_closed_port()}/m.onnx"
            )
            monkeypatch.setitem(registry.REGISTRY, "yolox-nano", spec)
    elif case == "out_is_dir":
        out = tmp_path
    elif case == "bad_provider":
        extra = ["--providers", "NoSuchExecutionProvider,CPUExecutionProvider"]
    assert main(["track", source, "--out", str(out), "--no-progress", *extra]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("storesense: error: ") and message in captured.err
    assert captured.err.count("\n") == 1 and "Traceback" not in captured.err
    assert captured.out == ""


def test_installed_command_reports_missing_file_without_traceback(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from storesense.api.cli import main; sys.exit(main(sys.argv[1:]))",
            "track",
            str(tmp_path / "missing.mp4"),
            "--out",
            str(tmp_path / "o.txt"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"storesense: error: video file not found: {tmp_path / 'missing.mp4'}"
    ]


@pytest.fixture(scope="module")
def detector(yolox_path: Path) -> Detector:
    return Detector(yolox_path)


def test_pipeline_stats_and_prefetch_give_the_same_tracks(clip: Path, detector: Detector) -> None:
    results = []
    for prefetch in (0, 3):
        pipeline = CameraPipeline(detector, stats=PipelineStats())
        with open_source(clip, camera_id="plaza", sample_fps=3.5) as source:
            results.append(
                [
                    (f.index, t.track_id.tolist(), t.xyxy)
                    for f, t in run_pipeline(source, pipeline, prefetch=prefetch)
                ]
            )
        summary = pipeline.stats.summary()
        assert pipeline.stats.frames == 20
        assert all(summary[stage]["count"] == 20 for stage in STAGES)
        assert (
            0
            < summary["inference"]["mean_ms"]
            == pytest.approx(pipeline.stats.total("inference") / 20 * 1000)
        )
    for (index_a, ids_a, boxes_a), (index_b, ids_b, boxes_b) in zip(*results, strict=True):
        assert index_a == index_b and ids_a == ids_b
        np.testing.assert_array_equal(boxes_a, boxes_b)


def test_detection_filter_runs_before_the_tracker(clip: Path, detector: Detector) -> None:
    def left_half_only(detections: Detections) -> Detections:
        return detections[detections.anchors()[:, 0] < 384]

    pipeline = CameraPipeline(detector, detection_filter=left_half_only)
    with open_source(clip, camera_id="plaza") as source:
        tracked = [tracks for _, tracks in islice(run_pipeline(source, pipeline), 10)]
    assert sum(len(tracks) for tracks in tracked) > 0
    assert all(np.all(tracks.anchors()[:, 0] < 384) for tracks in tracked)


def test_decode_errors_reach_the_consumer(detector: Detector, clip: Path) -> None:
    with open_source(clip, camera_id="plaza") as source:
        good = next(iter(source))

    def failing() -> Iterator[Frame]:
        yield good
        raise SourceError("camera unplugged")

    pipeline = CameraPipeline(detector)
    seen = []
    with pytest.raises(SourceError, match="camera unplugged"):
        for frame, _ in run_pipeline(failing(), pipeline):
            seen.append(frame.index)
    assert seen == [1]
    with pytest.raises(ValueError, match="prefetch"):
        next(run_pipeline([good], pipeline, prefetch=-1))
