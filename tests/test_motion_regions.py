"""Region-gated detection on real PETS09-S2L1 frames: a crop around motion and the tracked
people, run with a smaller model at the full frame's scale, finds the people full-frame
detection finds, and the pipeline still looks at the whole frame every refresh period."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import pytest
from storesense.vision.detections import Detections
from storesense.vision.detector import Detector
from storesense.vision.frames import Frame
from storesense.vision.motion import MotionConfig, detection_region
from storesense.vision.pipeline import CameraPipeline
from storesense.vision.tracking import Tracker
from storesense.vision.tracking.matching import iou_matrix
from storesense.zones.config import LayoutError, parse_layout

Image = npt.NDArray[np.uint8]
FULL_SCALE = 416 / 768  # YOLOX-Nano's 416 input on a 768x576 PETS09 frame
SIZES = (256, 320)


@pytest.fixture(scope="module")
def frames(pets09: Path) -> list[Image]:
    capture = cv2.VideoCapture(str(pets09 / "PETS09-S2L1.avi"))
    images = []
    while True:
        ok, image = capture.read()
        if not ok:
            break
        images.append(np.asarray(image, np.uint8))
    capture.release()
    return images


@pytest.fixture(scope="module")
def empty_scene(frames: list[Image]) -> Image:
    return np.median(np.stack(frames[::8]), axis=0).astype(np.uint8)


@pytest.fixture(scope="module")
def yolox(yolox_path: Path) -> Detector:
    return Detector(yolox_path, intra_op_threads=1)


def _on_crop(detector: Detector, image: Image, region: tuple[tuple[int, ...], int]) -> Detections:
    (x0, y0, x1, y1), size = region
    found = detector.variant(input_size=size).detect(image[y0:y1, x0:x1])
    return Detections(found.xyxy + np.float32([x0, y0, x0, y0]), found.confidence, found.class_id)


def test_a_region_finds_the_people_full_frame_detection_finds(
    yolox: Detector, frames: list[Image]
) -> None:
    """For one person of each of 20 real frames, the region around them (as if they alone
    moved): every confident full-frame person inside the crop is found again with a close
    box, and the crop finds no confident person the full frame did not see at all."""
    rng = np.random.default_rng(3)
    ious: list[float] = []
    unseen = crops = 0
    for image in frames[::40]:
        full = yolox.detect(image)
        confident = full[full.confidence >= 0.5]
        if len(confident) == 0:
            continue
        person = confident.xyxy[rng.integers(len(confident))][None]
        region = detection_region(person, image.shape[:2], FULL_SCALE, SIZES)
        assert region is not None  # one person always fits a 256 crop
        (x0, y0, x1, y1), size = region
        assert size == 256 and (x1 - x0, y1 - y0) == (472, 472)
        crops += 1
        found = _on_crop(yolox, image, region)
        inside = confident[
            (confident.xyxy[:, 0] > x0 + 2)
            & (confident.xyxy[:, 1] > y0 + 2)
            & (confident.xyxy[:, 2] < x1 - 2)
            & (confident.xyxy[:, 3] < y1 - 2)
        ]
        assert len(inside) >= 1 and len(found) >= 1
        ious.extend(iou_matrix(inside.xyxy, found.xyxy).max(axis=1).tolist())
        sure = found[found.confidence >= 0.5]
        if len(sure):
            unseen += int((iou_matrix(sure.xyxy, full.xyxy).max(axis=1) < 0.5).sum())
    assert crops >= 15 and len(ious) >= 40
    assert min(ious) >= 0.5, sorted(ious)[:5]  # every one found (the usual IoU 0.5 match)
    assert sum(iou < 0.7 for iou in ious) <= 2  # boxes close but for a few overlapping people
    assert float(np.median(ious)) >= 0.85
    assert unseen <= 2


def test_people_spread_over_the_frame_need_the_whole_frame() -> None:
    spread = np.array([[10, 10, 50, 100], [700, 400, 740, 500]], np.float32)
    assert detection_region(spread, (576, 768), FULL_SCALE, SIZES) is None
    near = np.array([[300, 100, 340, 200], [620, 380, 660, 480]], np.float32)
    region = detection_region(near, (576, 768), FULL_SCALE, SIZES)
    assert region is not None and region[1] == 320
    (x0, y0, x1, y1), _ = region
    assert 0 <= x0 < 300 and x1 == 768 and y0 == 0 and y1 == 576  # clipped to the frame
    assert detection_region(near, (576, 768), FULL_SCALE, ()) is None
    assert detection_region(np.zeros((0, 4), np.float32), (576, 768), FULL_SCALE, SIZES) is None
    # a smaller frame: the crop keeps the network's scale and stays inside the frame
    small = detection_region(near[:1], (300, 400), 416 / 400, SIZES)
    assert small is not None and small[0][2] <= 400 and small[0][2] - small[0][0] == 246


def _walker(empty: Image, person: Image, step: int) -> Image:
    """The empty plaza with one real person pasted, moving 6 px a frame to the right."""
    image = empty.copy()
    h, w = person.shape[:2]
    x, y = 150 + 6 * step, 250
    image[y : y + h, x : x + w] = person
    return image


def test_one_walker_is_tracked_the_same_with_regions_and_the_whole_frame_is_refreshed(
    yolox: Detector, frames: list[Image], empty_scene: Image, pets09: Path
) -> None:
    """One real person (cut out of frame 1 by the ground truth) walking over the empty plaza
    for 6 s: the region pipeline detects mostly on crops, gives the same tracks as the
    full-frame pipeline, and runs the whole frame at least once a refresh period."""
    first = [line.split(",") for line in (pets09 / "gt" / "gt.txt").read_text().splitlines()]
    x, y, w, h = (int(float(v)) for v in next(r for r in first if r[0] == "1")[2:6])
    person = frames[0][max(0, y) : y + h, max(0, x) : x + w]
    rng = np.random.default_rng(5)
    config = MotionConfig(refresh_seconds=1.0, region_input_sizes=(256, 320))
    regions = CameraPipeline(yolox, motion=config)
    whole = CameraPipeline(yolox, motion=config.model_copy(update={"region_input_sizes": ()}))
    fps = 7.0
    for index in range(10):  # the background is learned
        still = np.clip(empty_scene + rng.normal(0, 2, empty_scene.shape), 0, 255)
        for pipeline in (regions, whole):
            pipeline.process(Frame(still.astype(np.uint8), index + 1, index / fps))
    boxes_r, boxes_w = [], []
    for step in range(42):
        index = 10 + step
        image = _walker(empty_scene, person, step)
        frame = Frame(image, index + 1, index / fps)
        boxes_r.append(regions.process(frame).xyxy)
        boxes_w.append(whole.process(frame).xyxy)
    assert regions.region_runs >= 20 and whole.region_runs == 0
    assert regions.full_runs >= 6  # the whole frame at least once a second (6 s)
    assert regions.detector_runs == regions.region_runs + regions.full_runs
    assert regions.detector_runs + regions.gated_frames == 52
    assert [len(b) for b in boxes_r[10:]] == [len(b) for b in boxes_w[10:]]
    assert all(len(b) == 1 for b in boxes_w[10:])
    paired = [iou_matrix(a, b)[0, 0] for a, b in zip(boxes_r[10:], boxes_w[10:], strict=True)]
    assert min(paired) >= 0.7


def test_held_boxes_cover_where_a_track_is_and_is_going() -> None:
    tracker = Tracker()
    for k in range(6):
        box = np.array([[100.0 + 10 * k, 50.0, 140.0 + 10 * k, 150.0]], np.float32)
        tracker.update(Detections(box, np.array([0.9]), np.array([0])), timestamp=k * 0.1)
    held = tracker.held_boxes(0.5 + 1.0)  # one second later: about 100 px to the right
    assert held.shape == (1, 4)
    assert held[0, 0] <= 152 and held[0, 2] >= 190 + 60  # now, and well ahead
    assert Tracker().held_boxes(1.0).shape == (0, 4)


def test_region_detection_is_off_by_default(yolox: Detector, frames: list[Image]) -> None:
    """The default gate detects on whole frames only: counts equal the ungated ones."""
    assert MotionConfig().region_input_sizes == ()
    pipeline = CameraPipeline(yolox, motion=MotionConfig())
    for index in range(10):
        pipeline.process(Frame(frames[index], index + 1, index / 7))
    assert pipeline.region_runs == 0 and pipeline.full_runs == pipeline.detector_runs == 10


@pytest.mark.parametrize("sizes", [[300], [16]])
def test_bad_region_sizes_are_clear(sizes: list[int]) -> None:
    camera = {"id": "cam", "motion": {"region_input_sizes": sizes}}
    with pytest.raises(LayoutError, match="region"):
        parse_layout({"store": {"id": "s"}, "cameras": [camera]})
