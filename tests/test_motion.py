"""Motion gate on real PETS09-S2L1 frames: wakes on people, not on light or noise, and
keeps people standing still tracked while it skips the detector."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import pytest
from storesense.vision.detector import Detector
from storesense.vision.frames import Frame
from storesense.vision.motion import MotionConfig, MotionDetector, MotionGate
from storesense.vision.pipeline import CameraPipeline
from storesense.zones.config import LayoutError, parse_layout

Image = npt.NDArray[np.uint8]


@pytest.fixture(scope="module")
def pets_video(pets09: Path) -> list[Image]:
    capture = cv2.VideoCapture(str(pets09 / "PETS09-S2L1.avi"))
    frames = []
    while True:
        ok, image = capture.read()
        if not ok:
            break
        frames.append(np.asarray(image, np.uint8))
    capture.release()
    assert len(frames) == 795
    return frames


@pytest.fixture(scope="module")
def empty_scene(pets_video: list[Image]) -> Image:
    """The plaza with nobody in it: the median of frames spread over the whole video."""
    return np.median(np.stack(pets_video[::8]), axis=0).astype(np.uint8)


@pytest.fixture(scope="module")
def gt_boxes(pets09: Path) -> dict[int, list[tuple[int, int, int, int]]]:
    boxes: dict[int, list[tuple[int, int, int, int]]] = {}
    for line in (pets09 / "gt" / "gt.txt").read_text().splitlines():
        frame, _, x, y, w, h = (float(v) for v in line.split(",")[:6])
        boxes.setdefault(int(frame), []).append((int(x), int(y), int(x + w), int(y + h)))
    return boxes


def _noisy(image: Image, rng: np.random.Generator, sigma: float) -> Image:
    noise = rng.normal(0.0, sigma, image.shape)
    return np.clip(image.astype(np.float32) + noise, 0, 255).astype(np.uint8)


def _learned(detector: MotionDetector, scene: Image, rng: np.random.Generator, n: int = 20) -> None:
    for _ in range(n):
        detector.update(_noisy(scene, rng, 3.0))


@pytest.mark.parametrize("sigma", [2.0, 6.0])
def test_sensor_noise_on_an_empty_scene_does_not_wake_it(empty_scene: Image, sigma: float) -> None:
    rng = np.random.default_rng(1)
    motion = MotionDetector(MotionConfig())
    assert motion.update(_noisy(empty_scene, rng, sigma)).moving  # first frame: unknown
    woke = [motion.update(_noisy(empty_scene, rng, sigma)).moving for _ in range(60)]
    assert not any(woke)


@pytest.mark.parametrize("person", [0, 1, 2])
def test_wakes_on_a_person_entering_an_empty_scene(
    empty_scene: Image,
    pets_video: list[Image],
    gt_boxes: dict[int, list[tuple[int, int, int, int]]],
    person: int,
) -> None:
    rng = np.random.default_rng(2)
    motion = MotionDetector(MotionConfig())
    _learned(motion, empty_scene, rng)
    x1, y1, x2, y2 = gt_boxes[1][person]
    entering = empty_scene.copy()
    entering[y1:y2, x1:x2] = pets_video[0][y1:y2, x1:x2]  # the real person, pasted in place
    result = motion.update(_noisy(entering, rng, 3.0))
    assert result.moving
    centre_x, centre_y = (x1 + x2) / 2, (y1 + y2) / 2
    inside = [
        rx1 <= centre_x <= rx2 and ry1 <= centre_y <= ry2 for rx1, ry1, rx2, ry2 in result.regions
    ]
    assert any(inside), f"no region around the person at {(x1, y1, x2, y2)}: {result.regions}"


def test_wakes_on_the_real_crowd_against_the_empty_scene(
    empty_scene: Image, pets_video: list[Image]
) -> None:
    rng = np.random.default_rng(3)
    motion = MotionDetector(MotionConfig())
    _learned(motion, empty_scene, rng)
    assert motion.update(pets_video[100]).moving


@pytest.mark.parametrize("gain", [0.6, 0.8, 1.25, 1.5])
def test_ignores_a_global_brightness_change(empty_scene: Image, gain: float) -> None:
    rng = np.random.default_rng(4)
    motion = MotionDetector(MotionConfig())
    _learned(motion, empty_scene, rng)
    changed = np.clip(empty_scene.astype(np.float32) * gain, 0, 255).astype(np.uint8)
    woke = [motion.update(_noisy(changed, rng, 3.0)).moving for _ in range(10)]
    assert not any(woke)


def test_ignores_slow_lighting_drift_but_not_a_person_after_it(
    empty_scene: Image,
    pets_video: list[Image],
    gt_boxes: dict[int, list[tuple[int, int, int, int]]],
) -> None:
    rng = np.random.default_rng(5)
    motion = MotionDetector(MotionConfig())
    _learned(motion, empty_scene, rng)
    scene = empty_scene.astype(np.float32)
    woke = []
    for k in range(140):  # 20 s at 7 fps: 30 % darker, with a warmer tint growing
        drift = scene * (1.0 - 0.3 * k / 140)
        drift[:, :, 2] *= 1.0 + 0.1 * k / 140
        woke.append(motion.update(_noisy(np.clip(drift, 0, 255).astype(np.uint8), rng, 3)).moving)
    assert not any(woke)
    x1, y1, x2, y2 = gt_boxes[1][0]
    last = np.clip(drift, 0, 255).astype(np.uint8)
    last[y1:y2, x1:x2] = pets_video[0][y1:y2, x1:x2]
    assert motion.update(last).moving


@pytest.fixture(scope="module")
def yolox(yolox_path: Path) -> Detector:
    return Detector(yolox_path, intra_op_threads=1)


def test_keeps_a_standing_person_tracked_through_a_still_stretch(
    yolox: Detector, pets_video: list[Image]
) -> None:
    """A real frame repeated with sensor noise for 5 s: the same people stay tracked on every
    frame with the same ids, while the detector runs about once a second."""
    rng = np.random.default_rng(6)
    gated = CameraPipeline(yolox, motion=MotionConfig(refresh_seconds=1.0))
    always = CameraPipeline(yolox)
    fps, seconds = 7.0, 5.0
    frames = int(fps * seconds)
    gated_ids, always_ids = [], []
    for index in range(frames):
        image = _noisy(pets_video[100], rng, 3.0)
        frame = Frame(image, index + 1, index / fps, "plaza")
        gated_ids.append(sorted(gated.process(frame).track_id.tolist()))
        always_ids.append(sorted(always.process(frame).track_id.tolist()))
    confirmed = always_ids[-1]
    assert len(confirmed) >= 4  # real people of frame 101 are found
    settled_from = next(i for i, ids in enumerate(always_ids) if ids == confirmed)
    assert all(ids == confirmed for ids in gated_ids[settled_from:])
    assert gated.gated_frames > frames // 2
    assert gated.detector_runs <= settled_from + 2 + seconds / 1.0 + 1
    assert gated.detector_runs + gated.gated_frames == frames


def test_a_person_walking_in_is_detected_on_the_next_frame(
    yolox: Detector, empty_scene: Image, pets_video: list[Image]
) -> None:
    """Gated pipeline on a still empty plaza, then the real crowd: detected at once."""
    rng = np.random.default_rng(7)
    pipeline = CameraPipeline(yolox, motion=MotionConfig(refresh_seconds=10.0))
    for index in range(20):
        pipeline.process(Frame(_noisy(empty_scene, rng, 3.0), index + 1, index / 7))
    runs = pipeline.detector_runs
    assert pipeline.gated_frames >= 15
    for index in range(20, 23):
        tracks = pipeline.process(Frame(pets_video[100 + index - 20], index + 1, index / 7))
    assert pipeline.detector_runs == runs + 3
    assert len(tracks) >= 3


@pytest.mark.parametrize(
    ("moving", "settled", "elapsed", "detect"),
    [
        (True, True, 0.1, True),  # motion
        (False, False, 0.1, True),  # tracker waiting for a confirmation or a missed track
        (False, True, 0.1, False),  # still and settled: skip
        (False, True, 1.0, True),  # refresh due
        (False, True, -5.0, True),  # clock went backwards (stream restarted)
    ],
)
def test_gate_rules(moving: bool, settled: bool, elapsed: float, detect: bool) -> None:
    gate = MotionGate(MotionConfig(refresh_seconds=1.0, hold_seconds=0.0))
    assert gate.should_detect(moving=True, timestamp=10.0, settled=True)
    gate.detected(10.0)
    assert gate.should_detect(moving=moving, timestamp=10.0 + elapsed, settled=settled) is detect


def test_hold_keeps_detecting_after_motion_stops() -> None:
    gate = MotionGate(MotionConfig(refresh_seconds=5.0, hold_seconds=0.5))
    gate.should_detect(moving=True, timestamp=0.0, settled=True)
    gate.detected(0.0)
    assert gate.should_detect(moving=False, timestamp=0.4, settled=True)
    assert not gate.should_detect(moving=False, timestamp=0.6, settled=True)


def test_disabled_gate_detects_every_frame(yolox: Detector, pets_video: list[Image]) -> None:
    pipeline = CameraPipeline(yolox, motion=MotionConfig(enabled=False))
    for index in range(3):
        pipeline.process(Frame(pets_video[0], index + 1, index / 7))
    assert pipeline.detector_runs == 3 and pipeline.motion is None


@pytest.mark.parametrize(
    ("camera", "message"),
    [
        ({"motion": {"refresh_seconds": 0}}, "motion.refresh_seconds"),
        ({"motion": {"scale": 64}}, "motion.scale"),
        ({"motion": {"sensitivity": 3}}, "motion.sensitivity"),
        ({"detector_input_size": 300}, "multiple of 32"),
        ({"detector_input_size": 64}, "detector_input_size"),
    ],
)
def test_bad_motion_and_input_size_settings_are_clear(
    camera: dict[str, object], message: str
) -> None:
    with pytest.raises(LayoutError, match=message):
        parse_layout({"store": {"id": "s"}, "cameras": [{"id": "cam", **camera}]})


def test_layout_defaults_gate_every_camera() -> None:
    layout = parse_layout({"store": {"id": "s"}, "cameras": [{"id": "cam"}]})
    assert layout.cameras[0].motion == MotionConfig()
    assert layout.cameras[0].detector_input_size is None


def test_an_empty_scene_is_checked_only_every_empty_refresh_seconds(
    yolox: Detector, empty_scene: Image
) -> None:
    """Nobody tracked: the detector looks every ``empty_refresh_seconds``, not every second."""
    rng = np.random.default_rng(8)
    config = MotionConfig(refresh_seconds=1.0, empty_refresh_seconds=3.0)
    pipeline = CameraPipeline(yolox, motion=config)
    frames = 70  # 10 s at 7 fps
    for index in range(frames):
        tracks = pipeline.process(Frame(_noisy(empty_scene, rng, 3.0), index + 1, index / 7))
        assert len(tracks) == 0
    # first frame, then t = 3, 6 and 9 s; each may take one more frame to drop a
    # tentative track (a faint false positive in the median plaza)
    assert 4 <= pipeline.detector_runs <= 8
    every_second = CameraPipeline(yolox, motion=MotionConfig(empty_refresh_seconds=1.0))
    for index in range(frames):
        every_second.process(Frame(_noisy(empty_scene, rng, 3.0), index + 1, index / 7))
    assert every_second.detector_runs >= 10 > pipeline.detector_runs


def test_cameras_started_together_refresh_on_different_frames() -> None:
    """Each camera's first refresh comes early by its phase, so refreshes spread out."""
    config = MotionConfig(refresh_seconds=1.0, hold_seconds=0.0)
    early, late = MotionGate(config, phase=0.5), MotionGate(config, phase=0.0)
    for gate in (early, late):
        assert gate.should_detect(moving=True, timestamp=0.0, settled=True)
        gate.detected(0.0)
    assert early.should_detect(moving=False, timestamp=0.5, settled=True)
    assert not late.should_detect(moving=False, timestamp=0.5, settled=True)
    early.detected(0.5)
    # after the first refresh, every camera refreshes once a refresh_seconds
    assert not early.should_detect(moving=False, timestamp=1.2, settled=True)
    assert early.should_detect(moving=False, timestamp=1.5, settled=True)
