"""Shared inference across cameras: dynamic-batch copy of the real YOLOX-Nano equals
batch 1, fair round-robin scheduling, per-camera input size."""

from __future__ import annotations

import threading
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import pytest
from storesense.vision.detector import Detector, model_variant
from storesense.vision.frames import Frame
from storesense.vision.inference import InferenceService
from storesense.vision.pipeline import CameraPipeline

Image = npt.NDArray[np.uint8]


@pytest.fixture(scope="module")
def pets_frames(pets09: Path) -> list[Image]:
    capture = cv2.VideoCapture(str(pets09 / "PETS09-S2L1.avi"))
    frames = []
    for _ in range(8):
        ok, image = capture.read()
        assert ok
        frames.append(np.asarray(image, np.uint8))
    capture.release()
    return frames


@pytest.fixture(scope="module")
def yolox(yolox_path: Path) -> Detector:
    return Detector(yolox_path, intra_op_threads=1)


def test_shipped_model_is_fixed_at_batch_1_and_its_copy_is_dynamic(yolox: Detector) -> None:
    assert not yolox.batchable
    dynamic = yolox.variant(dynamic_batch=True)
    assert dynamic.batchable and dynamic.input_size == yolox.input_size
    assert dynamic.model_path != yolox.model_path
    # Cached: asking again gives the same file without rewriting it.
    again = model_variant(yolox.model_path, dynamic_batch=True, input_size=yolox.input_size)
    assert again == dynamic.model_path


@pytest.mark.parametrize("batch", [2, 5, 8])
def test_batched_outputs_equal_batch_1_outputs(
    yolox: Detector, pets_frames: list[Image], batch: int
) -> None:
    dynamic = yolox.variant(dynamic_batch=True)
    prepared = [yolox.preprocess(image) for image in pets_frames[:batch]]
    stacked = dynamic.run(np.stack([tensor for tensor, _ in prepared]))
    assert stacked.shape == (batch, 3549, 85)
    for row, (tensor, box) in enumerate(prepared):
        single = yolox.run(tensor[None])[0]
        np.testing.assert_allclose(stacked[row], single, rtol=1e-4, atol=1e-4)
        expected = yolox.postprocess(single, box)
        got = dynamic.postprocess(stacked[row], box)
        assert len(got) == len(expected) > 0
        np.testing.assert_allclose(got.xyxy, expected.xyxy, atol=1e-2)


def test_service_batches_frames_of_several_cameras_into_one_run(
    yolox: Detector, pets_frames: list[Image]
) -> None:
    service = InferenceService(yolox, workers=1, max_batch=4, start=False)
    try:
        tensors = [yolox.preprocess(image)[0] for image in pets_frames[:4]]
        futures = [
            service.submit(f"cam{i}", tensor, service.detector) for i, tensor in enumerate(tensors)
        ]
        service.start()
        results = [future.result(timeout=60) for future in futures]
        assert service.batches == 1 and service.frames == 4
        for tensor, result in zip(tensors, results, strict=True):
            np.testing.assert_allclose(result, yolox.run(tensor[None])[0], rtol=1e-4, atol=1e-4)
    finally:
        service.close()


@pytest.mark.parametrize("max_batch", [1, 3])
def test_a_busy_camera_cannot_starve_a_quiet_one(
    yolox: Detector, pets_frames: list[Image], max_batch: int
) -> None:
    served: list[str] = []
    service = InferenceService(yolox, workers=1, max_batch=max_batch, start=False, served=served)
    try:
        tensor = yolox.preprocess(pets_frames[0])[0]
        busy = [service.submit("busy", tensor) for _ in range(12)]
        quiet = service.submit("quiet", tensor)
        service.start()
        quiet.result(timeout=60)
        for future in busy:
            future.result(timeout=60)
    finally:
        service.close()
    # The quiet camera's one frame goes in the first turn after the busy camera's first.
    assert served.index("quiet") <= 1
    assert served.count("busy") == 12


def test_round_robin_interleaves_cameras_with_uneven_queues(
    yolox: Detector, pets_frames: list[Image]
) -> None:
    served: list[str] = []
    service = InferenceService(yolox, workers=1, max_batch=1, start=False, served=served)
    tensor = yolox.preprocess(pets_frames[0])[0]
    try:
        futures = [service.submit("a", tensor) for _ in range(4)]
        futures += [service.submit("b", tensor) for _ in range(2)]
        futures += [service.submit("c", tensor)]
        service.start()
        for future in futures:
            future.result(timeout=60)
    finally:
        service.close()
    assert served == ["a", "b", "c", "a", "b", "a", "a"]


def test_cameras_on_threads_get_their_own_results(
    yolox: Detector, pets_frames: list[Image]
) -> None:
    """Eight camera threads at once through two service threads: each gets its own frame's rows."""
    service = InferenceService(yolox, workers=2, max_batch=4)
    expected = {
        i: yolox.run(yolox.preprocess(image)[0][None])[0] for i, image in enumerate(pets_frames)
    }
    got: dict[int, npt.NDArray[np.float32]] = {}
    errors: list[BaseException] = []

    def camera(i: int) -> None:
        try:
            for _ in range(3):
                got[i] = service.infer(f"cam{i}", yolox.preprocess(pets_frames[i])[0])
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=camera, args=(i,)) for i in range(len(pets_frames))]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
    finally:
        service.close()
    assert not errors
    for i, rows in expected.items():
        np.testing.assert_allclose(got[i], rows, rtol=1e-4, atol=1e-4)
    assert service.frames == 3 * len(pets_frames)


def test_closed_service_refuses_and_fails_queued_requests(
    yolox: Detector, pets_frames: list[Image]
) -> None:
    service = InferenceService(yolox, workers=1, start=False)
    tensor = yolox.preprocess(pets_frames[0])[0]
    queued = service.submit("cam", tensor)
    service.close()
    with pytest.raises(RuntimeError, match="closed"):
        queued.result(timeout=5)
    with pytest.raises(RuntimeError, match="closed"):
        service.submit("cam", tensor)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"workers": 0}, "workers"), ({"max_batch": 0}, "max_batch")],
)
def test_bad_service_parameters(yolox: Detector, kwargs: dict[str, int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        InferenceService(yolox, start=False, **kwargs)


def test_a_tensor_of_the_wrong_size_is_refused(yolox: Detector) -> None:
    with (
        InferenceService(yolox, workers=1) as service,
        pytest.raises(ValueError, match="does not fit"),
    ):
        service.submit("cam", np.zeros((3, 320, 320), np.float32))


def test_pipeline_through_the_service_tracks_like_the_detector(
    yolox: Detector, pets_frames: list[Image]
) -> None:
    direct = CameraPipeline(yolox)
    with InferenceService(yolox, workers=2) as service:
        shared = CameraPipeline(service)
        for index, image in enumerate(pets_frames):
            frame = Frame(image, index + 1, index / 7, "plaza")
            a, b = direct.process(frame), shared.process(frame)
            assert a.track_id.tolist() == b.track_id.tolist()
            np.testing.assert_allclose(a.xyxy, b.xyxy, atol=1e-2)


def test_input_size_320_per_camera(yolox: Detector, pets_frames: list[Image]) -> None:
    with InferenceService(yolox, workers=1) as service:
        small = CameraPipeline(service, input_size=320)
        assert small.detector.input_size == (320, 320)
        assert service.detector_for(320) is small.detector  # one copy shared by cameras
        full = yolox.detect(pets_frames[0])
        found = small.detect(Frame(pets_frames[0], 1, 0.0))
    confident = full[full.confidence >= 0.5]
    assert len(found[found.confidence >= 0.5]) >= len(confident) - 2 > 0


@pytest.mark.parametrize("size", [(300, 320), (320,), (0, 0)])
def test_bad_variant_sizes(yolox: Detector, size: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="multiples of 32"):
        model_variant(yolox.model_path, input_size=size)


@pytest.mark.parametrize(("gate", "size"), [(True, None), (False, 320)])
def test_serve_pipeline_factory_takes_the_camera_motion_and_input_size(
    yolox: Detector, gate: bool, size: int | None
) -> None:
    from storesense.api.runtime import pipeline_factory_for
    from storesense.zones.config import parse_layout

    camera = {"id": "till", "motion": {"enabled": gate}, "detector_input_size": size}
    layout = parse_layout({"store": {"id": "s"}, "cameras": [camera]})
    with InferenceService(yolox, workers=1) as service:
        pipeline = pipeline_factory_for(service)(layout.cameras[0])
        assert pipeline.inference is service
        assert (pipeline.gate is not None) is gate
        assert pipeline.detector.input_size == (size or 416, size or 416)
