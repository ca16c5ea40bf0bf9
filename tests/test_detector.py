"""Detector: YOLOX on real PETS09 frames, the YOLOv8 decoder on built graphs, NMS,
letterbox geometry and execution-provider selection."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from scipy.optimize import linear_sum_assignment
from storesense.models.registry import ModelFormat
from storesense.vision.detector import Detector, choose_providers, letterbox, nms

CHOSEN_FRAMES = (1, 50, 100, 150, 200)


def _iou(a: npt.NDArray[np.float32], b: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    top_left = np.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(bottom_right - top_left, 0, None), axis=2)
    area_a = np.prod(a[:, 2:] - a[:, :2], axis=1)
    area_b = np.prod(b[:, 2:] - b[:, :2], axis=1)
    return inter / (area_a[:, None] + area_b[None, :] - inter)


@pytest.fixture(scope="module")
def pets_frames(pets09: Path) -> dict[int, npt.NDArray[np.uint8]]:
    capture = cv2.VideoCapture(str(pets09 / "PETS09-S2L1.avi"))
    frames: dict[int, npt.NDArray[np.uint8]] = {}
    for index in range(1, max(CHOSEN_FRAMES) + 1):
        ok, image = capture.read()
        assert ok, f"frame {index} did not decode"
        if index in CHOSEN_FRAMES:
            frames[index] = np.asarray(image, np.uint8)
    capture.release()
    return frames


@pytest.fixture(scope="module")
def yolox(yolox_path: Path) -> Detector:
    return Detector(yolox_path, ModelFormat.YOLOX, score_threshold=0.3)


def test_yolox_finds_ground_truth_people(
    yolox: Detector, pets_frames: dict[int, npt.NDArray[np.uint8]], pets09: Path
) -> None:
    gt = np.loadtxt(pets09 / "gt" / "gt.txt", delimiter=",")
    matched = truths = found = 0
    for index, image in pets_frames.items():
        rows = gt[gt[:, 0] == index]
        truth = np.c_[rows[:, 2:4], rows[:, 2:4] + rows[:, 4:6]].astype(np.float32)
        detections = yolox.detect(image)
        assert set(detections.class_id.tolist()) <= {0}
        assert np.all(detections.confidence >= 0.3)
        overlap = _iou(truth, detections.xyxy)
        gt_rows, det_cols = linear_sum_assignment(-overlap)
        matched += int((overlap[gt_rows, det_cols] >= 0.5).sum())
        truths += len(truth)
        found += len(detections)
    assert matched / truths >= 0.8, f"recall {matched}/{truths}"
    assert matched / found >= 0.6, f"precision {matched}/{found}"


def test_yolox_input_is_bgr_0_255_top_left_padded_with_114(
    yolox: Detector, pets_frames: dict[int, npt.NDArray[np.uint8]]
) -> None:
    image = pets_frames[1]  # 576x768 -> scale 416/768, resized to 312x416 at the top
    tensor, box = yolox.preprocess(image)
    assert tensor.shape == (3, 416, 416) and tensor.dtype == np.float32
    assert (box.pad_x, box.pad_y) == (0.0, 0.0)
    assert np.all(tensor[:, 312:, :] == 114)
    resized = cv2.resize(image, (416, 312), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_array_equal(tensor[0, :312], resized[:, :, 0])  # channel 0 is blue


def test_detect_batch_on_fixed_batch_model_matches_detect(
    yolox: Detector, pets_frames: dict[int, npt.NDArray[np.uint8]]
) -> None:
    images = [pets_frames[1], pets_frames[100]]
    assert not yolox.batchable
    batched = yolox.detect_batch(images)
    for image, result in zip(images, batched, strict=True):
        single = yolox.detect(image)
        np.testing.assert_allclose(result.xyxy, single.xyxy, atol=1e-3)
    assert yolox.detect_batch([]) == []


# A YOLOv8-style graph whose output is a known constant [1, 4+C, N] broadcast over the
# batch: output = const + 0 * mean(images). 3 classes, 4 anchors, 64x64 input.
YOLOV8_RAW = np.array(
    [
        [32, 33, 32, 10],  # cx of anchors 0..3 (network pixels)
        [32, 33, 32, 10],  # cy
        [16, 16, 16, 4],  # w
        [40, 40, 40, 4],  # h
        [0.9, 0.8, 0.0, 0.0],  # class 0 score
        [0.0, 0.0, 0.7, 0.0],  # class 1 score
        [0.0, 0.0, 0.0, 0.05],  # class 2 score
    ],
    dtype=np.float32,
)[None]


def _yolov8_graph(path: Path, batch: int | str) -> Path:
    images = helper.make_tensor_value_info("images", TensorProto.FLOAT, [batch, 3, 64, 64])
    output = helper.make_tensor_value_info("output0", TensorProto.FLOAT, [batch, 7, 4])
    nodes = [
        helper.make_node("ReduceMean", ["images"], ["mean4d"], axes=[1, 2, 3], keepdims=1),
        helper.make_node("ReduceMean", ["mean4d"], ["mean"], axes=[3], keepdims=0),
        helper.make_node("Mul", ["mean", "zero"], ["nothing"]),
        helper.make_node("Add", ["raw", "nothing"], ["output0"]),
    ]
    initialisers = [
        numpy_helper.from_array(YOLOV8_RAW, "raw"),
        numpy_helper.from_array(np.zeros((1, 1, 1), np.float32), "zero"),
    ]
    graph = helper.make_graph(nodes, "yolov8_constant", [images], [output], initialisers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


class CountingSession:
    """Delegates to an onnxruntime session, counting ``run`` calls."""

    def __init__(self, session: Any) -> None:
        self.session = session
        self.calls = 0

    def run(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        return self.session.run(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.session, name)


@pytest.mark.parametrize(
    ("classes", "expected_ids", "expected_scores"),
    [(None, [0, 1], [0.9, 0.7]), ((0,), [0], [0.9]), ((2,), [], [])],
)
def test_yolov8_decoder_boxes_classes_nms_and_unletterbox(
    tmp_path: Path,
    classes: tuple[int, ...] | None,
    expected_ids: list[int],
    expected_scores: list[float],
) -> None:
    detector = Detector(
        _yolov8_graph(tmp_path / "v8.onnx", 1), "yolov8", score_threshold=0.1, classes=classes
    )
    # A 128 (h) x 64 (w) frame: scale 0.5 to 32x64, centred with 16 px of padding each side.
    frame = np.zeros((128, 64, 3), np.uint8)
    result = detector.detect(frame)
    assert result.class_id.tolist() == expected_ids
    np.testing.assert_allclose(result.confidence, expected_scores, rtol=1e-6)
    # Anchor 0 is (24, 12, 40, 52) in the network; anchor 1 overlaps it in the same class
    # and is suppressed; anchor 2 is the same box in class 1 and survives class-wise NMS.
    # Un-letterboxed: x = (x_net - 16) / 0.5, y = y_net / 0.5.
    for box in result.xyxy.tolist():
        assert box == pytest.approx([16.0, 24.0, 48.0, 104.0], abs=1e-4)


def test_detect_batch_runs_one_session_call_on_a_dynamic_batch_graph(tmp_path: Path) -> None:
    dynamic = Detector(_yolov8_graph(tmp_path / "dyn.onnx", "batch"), "yolov8", classes=None)
    fixed = Detector(_yolov8_graph(tmp_path / "one.onnx", 1), "yolov8", classes=None)
    assert dynamic.batchable and not fixed.batchable
    frames = [np.zeros((128, 64, 3), np.uint8), np.zeros((64, 64, 3), np.uint8)] * 2
    counters = []
    results = []
    for detector in (dynamic, fixed):
        counter = CountingSession(detector.session)
        detector.session = counter
        results.append(detector.detect_batch(frames))
        counters.append(counter.calls)
    assert counters == [1, len(frames)]
    for batched, looped in zip(*results, strict=True):
        np.testing.assert_array_equal(batched.xyxy, looped.xyxy)
        assert batched.class_id.tolist() == [0, 1]
    # The 64x64 frame needs no letterbox: boxes come out in network pixels.
    assert results[0][1].xyxy[0].tolist() == pytest.approx([24.0, 12.0, 40.0, 52.0])


def test_nms_is_class_wise_and_orders_by_score() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [0, 0, 10, 10], [50, 50, 60, 60]], np.float32)
    scores = np.array([0.6, 0.9, 0.8, 0.7], np.float32)
    class_ids = np.array([0, 0, 1, 0], np.int64)
    assert nms(boxes, scores, class_ids, 0.5).tolist() == [1, 2, 3]
    assert nms(boxes, scores, np.zeros(4, np.int64), 0.5).tolist() == [1, 3]
    assert (
        nms(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64), 0.5).size
        == 0
    )


@pytest.mark.parametrize("centre", [False, True])
@pytest.mark.parametrize("shape", [(576, 768), (480, 640), (300, 200), (416, 416)])
def test_letterbox_round_trip(shape: tuple[int, int], centre: bool) -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (*shape, 3), dtype=np.uint8)
    padded, box = letterbox(image, (416, 416), centre=centre)
    assert padded.shape == (416, 416, 3)
    frame_boxes = np.array([[0, 0, shape[1], shape[0]], [10.5, 20.25, 100, 150]], np.float32)
    back = box.to_frame(box.to_network(frame_boxes))
    np.testing.assert_allclose(back, frame_boxes, atol=1e-3)
    # The whole frame lands inside the canvas, touching its pad on the letterbox axis.
    net = box.to_network(frame_boxes[:1])[0]
    assert net[0] >= 0 and net[1] >= 0 and net[2] <= 416.01 and net[3] <= 416.01
    assert max(net[2] - net[0], net[3] - net[1]) == pytest.approx(416, abs=0.5)


def test_provider_selection() -> None:
    assert choose_providers(None) == ["CPUExecutionProvider"]
    assert choose_providers("cpu") == ["CPUExecutionProvider"]
    assert "CPUExecutionProvider" in choose_providers("auto")
    with pytest.raises(ValueError, match="NoSuchExecutionProvider"):
        choose_providers("NoSuchExecutionProvider")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"score_threshold": 1.5}, "score_threshold"),
        ({"iou_threshold": 0.0}, "iou_threshold"),
        ({"providers": "NoSuchExecutionProvider"}, "not available"),
        ({"intra_op_threads": -1}, "intra_op_threads"),
    ],
)
def test_bad_detector_parameters_raise_value_error(
    yolox_path: Path, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        Detector(yolox_path, **kwargs)


def test_bad_inputs_are_clear(yolox: Detector, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        yolox.detect(np.zeros((10, 10), np.uint8))
    with pytest.raises(FileNotFoundError):
        Detector(tmp_path / "missing.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    with pytest.raises(ValueError, match="cannot load ONNX model"):
        Detector(junk)
    with pytest.raises(ValueError, match="cannot load ONNX model") as raised:
        Detector(junk)
    assert "\n" not in str(raised.value)


def test_from_model_rejects_a_non_detector_before_fetching(monkeypatch: pytest.MonkeyPatch) -> None:
    import storesense.models.fetch as fetch_module

    def no_fetch(name: str, *args: object, **kwargs: object) -> Path:
        raise AssertionError(f"{name} was fetched")

    monkeypatch.setattr(fetch_module, "fetch", no_fetch)
    with pytest.raises(ValueError, match="person-reid-0248 is a reid model, not a detector"):
        Detector.from_model("person-reid-0248")
