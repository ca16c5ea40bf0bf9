"""The multi-object tracker: Kalman filter, association, track life cycle (no data needed)."""

from __future__ import annotations

import numpy as np
import pytest
from storesense.vision.detections import Detections, Tracks
from storesense.vision.tracking import ConstantVelocityKalman, Tracker, TrackerConfig
from storesense.vision.tracking.kalman import dense_covariance
from storesense.vision.tracking.matching import direction_consistency, iou_matrix, match


def boxes_at(*xyxy: tuple[float, float, float, float], score: float = 0.9) -> Detections:
    boxes = np.array(xyxy, np.float32).reshape(-1, 4)
    return Detections(boxes, np.full(len(boxes), score), np.zeros(len(boxes), np.int64))


def person(cx: float, bottom: float, height: float = 100.0, score: float = 0.9) -> Detections:
    return boxes_at((cx - 0.2 * height, bottom - height, cx + 0.2 * height, bottom), score=score)


# ---------------------------------------------------------------- Kalman filter


@pytest.mark.parametrize("fps", [5.0, 25.0])
@pytest.mark.parametrize("jitter", [False, True])
def test_kalman_converges_to_constant_velocity(fps: float, jitter: bool) -> None:
    kf = ConstantVelocityKalman()
    rng = np.random.default_rng(1)
    velocity = np.array([80.0, -40.0, 0.0, 0.0])
    start = np.array([100.0, 300.0, 40.0, 100.0])
    mean, cov = kf.initiate(start[None])
    t = 0.0
    for _ in range(int(4 * fps)):
        dt = (1.0 / fps) * (rng.uniform(0.3, 2.0) if jitter else 1.0)
        t += dt
        mean, cov = kf.predict(mean, cov, dt)
        mean, cov = kf.update(mean, cov, (start + velocity * t)[None])
    np.testing.assert_allclose(mean[0, 4:], velocity, atol=2.0)
    np.testing.assert_allclose(mean[0, :4], start + velocity * t, atol=1.0)


def test_kalman_prediction_composes_over_time_steps() -> None:
    kf = ConstantVelocityKalman()
    mean, cov = kf.initiate(np.array([[10.0, 20.0, 30.0, 90.0], [0.0, 0.0, 5.0, 10.0]]))
    mean[:, 4:] = [[12.0, -3.0, 0.5, 1.0], [1.0, 2.0, 0.0, 0.0]]
    once_mean, once_cov = kf.predict(mean.copy(), cov.copy(), 0.3)
    twice_mean, twice_cov = kf.predict(*kf.predict(mean.copy(), cov.copy(), 0.1), 0.2)
    # White-noise acceleration is defined in continuous time: 0.1 s + 0.2 s == 0.3 s.
    # (Height changes between the two steps, so the noise scale differs slightly.)
    np.testing.assert_allclose(twice_mean, once_mean)
    np.testing.assert_allclose(twice_cov, once_cov, rtol=1e-2)
    still_mean, still_cov = kf.predict(mean.copy(), cov.copy(), 0.0)
    np.testing.assert_array_equal(still_mean, mean)
    np.testing.assert_array_equal(still_cov, cov)


def test_kalman_block_form_equals_dense_filter() -> None:
    kf = ConstantVelocityKalman(measurement_std=0.1, acceleration_std=0.7)
    mean, cov = kf.initiate(np.array([[50.0, 60.0, 20.0, 80.0]]))
    dense_mean, dense_cov = mean[0].copy(), dense_covariance(cov)[0]
    for step, dt in enumerate([0.04, 0.2, 0.1, 0.5]):
        z = np.array([50.0 + 9 * step, 60.0 - 4 * step, 21.0, 82.0 + step])
        # Dense reference: x' = F x, P' = F P F^T + Q; K = P H^T (H P H^T + R)^-1.
        f = np.eye(8)
        f[:4, 4:] = dt * np.eye(4)
        h2 = dense_mean[3] ** 2
        q_rate = h2 * np.array([0.7**2, 0.7**2, 0.1**2, 0.1**2])
        q = np.zeros((8, 8))
        q[:4, :4] = np.diag(q_rate * dt**3 / 3)
        q[:4, 4:] = q[4:, :4] = np.diag(q_rate * dt**2 / 2)
        q[4:, 4:] = np.diag(q_rate * dt)
        dense_mean = f @ dense_mean
        dense_cov = f @ dense_cov @ f.T + q
        h = np.hstack([np.eye(4), np.zeros((4, 4))])
        r = np.eye(4) * (0.1 * z[3]) ** 2
        gain = dense_cov @ h.T @ np.linalg.inv(h @ dense_cov @ h.T + r)
        dense_mean = dense_mean + gain @ (z - h @ dense_mean)
        dense_cov = (np.eye(8) - gain @ h) @ dense_cov

        mean, cov = kf.predict(mean, cov, dt)
        mean, cov = kf.update(mean, cov, z[None])
        np.testing.assert_allclose(mean[0], dense_mean, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(dense_covariance(cov)[0], dense_cov, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize(
    "field",
    ["measurement_std", "acceleration_std", "size_acceleration_std", "initial_velocity_std"],
)
@pytest.mark.parametrize("value", [0.0, -1.0, float("nan")])
def test_kalman_rejects_non_positive_noise(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field):
        ConstantVelocityKalman(**{field: value})


# ---------------------------------------------------------------- matching


def test_iou_and_gated_match() -> None:
    tracks = np.array([[0, 0, 10, 10], [100, 100, 110, 110]], np.float64)
    boxes = np.array([[5, 0, 15, 10], [0, 0, 10, 10], [300, 300, 310, 310]], np.float64)
    iou = iou_matrix(tracks, boxes)
    np.testing.assert_allclose(iou[0], [50 / 150, 1.0, 0.0])
    np.testing.assert_allclose(iou[1], [0.0, 0.0, 0.0])
    rows, cols = match(iou, min_iou=0.3)
    assert (rows.tolist(), cols.tolist()) == ([0], [1])
    rows, cols = match(iou[:, [0]], min_iou=0.5)
    assert len(rows) == 0


# ---------------------------------------------------------------- tracker


def run(tracker: Tracker, frames: list[Detections], fps: float, start: int = 0) -> list[Tracks]:
    return [
        tracker.update(d, timestamp=(start + k) / fps, frame_index=start + k + 1)
        for k, d in enumerate(frames)
    ]


def test_crossing_people_keep_their_ids() -> None:
    fps = 10.0
    frames = []
    for k in range(40):
        x = 100.0 + 12.0 * k  # walking right, 120 px/s
        frames.append(
            Detections(
                np.array(
                    [[x - 20, 200, x + 20, 300], [660 - x - 22, 215, 660 - x + 22, 325]],
                    np.float32,
                ),
                np.array([0.9, 0.85]),
                np.array([0, 0]),
            )
        )
    # The two boxes overlap heavily around the crossing (frame 19).
    assert iou_matrix(frames[19].xyxy[:1], frames[19].xyxy[1:])[0, 0] > 0.5
    out = run(Tracker(), frames, fps)
    seen: dict[int, set[str]] = {}
    for tracks in out[2:]:
        for box, track_id in zip(tracks.xyxy, tracks.track_id, strict=True):
            seen.setdefault(int(track_id), set()).add("right" if box[3] < 310 else "left")
    assert sorted(seen) == [1, 2]
    assert all(len(sides) == 1 for sides in seen.values()), seen


def test_low_score_box_continues_a_track_but_never_starts_one() -> None:
    config = TrackerConfig()
    tracker = Tracker(config)
    high = [person(100 + 5 * k, 300) for k in range(5)]
    weak = person(125, 300, score=(config.low_score + config.high_score) / 2)
    out = run(tracker, [*high, weak], fps=10)
    assert out[-1].track_id.tolist() == out[-2].track_id.tolist() == [1]
    assert out[-1].confidence[0] == pytest.approx(weak.confidence[0])
    # Only low-score boxes: no track is ever born.
    lonely = run(Tracker(config), [person(300, 300, score=0.3)] * 10, fps=10)
    assert all(len(t) == 0 for t in lonely)


@pytest.mark.parametrize("min_hits", [1, 2, 3])
def test_confirmation_after_min_hits_and_blips_never_reported(min_hits: int) -> None:
    # confirm_score 1.0: every track waits min_hits (the default confirms boxes >= 0.9 at once)
    tracker = Tracker(TrackerConfig(min_hits=min_hits, confirm_score=1.0))
    walker = [person(100 + 4 * k, 300) for k in range(6)]
    blip_frame = 3
    frames = [
        Detections(
            np.concatenate([d.xyxy, person(500, 400).xyxy]) if k == blip_frame else d.xyxy,
            np.full(2 if k == blip_frame else 1, 0.9),
            np.zeros(2 if k == blip_frame else 1, np.int64),
        )
        for k, d in enumerate(walker)
    ]
    out = run(tracker, frames, fps=10)
    first_shown = next(k for k, t in enumerate(out) if len(t))
    assert first_shown == min_hits - 1
    reported = {int(i) for t in out for i in t.track_id}
    if min_hits == 1:
        assert reported == {1, 2}  # with min_hits=1 even the blip is confirmed at once
    else:
        assert reported == {1}


@pytest.mark.parametrize("fps", [5.0, 12.0, 30.0])
@pytest.mark.parametrize(("gap_fraction", "same_id"), [(0.6, True), (1.5, False)])
def test_lost_buffer_is_in_seconds_at_any_frame_rate(
    fps: float, gap_fraction: float, same_id: bool
) -> None:
    buffer = 1.0
    tracker = Tracker(TrackerConfig(lost_buffer_seconds=buffer))
    seen = [person(200, 300)] * int(fps)  # one second standing still
    hidden = [Detections.empty()] * round(gap_fraction * buffer * fps)
    back = [person(200, 300)] * 3
    out = run(tracker, [*seen, *hidden, *back], fps)
    ids_after = {int(i) for t in out[len(seen) + len(hidden) :] for i in t.track_id}
    lost = [int(i) for t in out for i in t.lost_ids]
    if same_id:
        assert ids_after == {1}
        assert lost == []
    else:
        assert ids_after == {2}
        assert lost == [1]
        removed_at = next(k for k, t in enumerate(out) if len(t.lost_ids))
        assert out[removed_at].timestamp - out[len(seen) - 1].timestamp > buffer
        assert out[removed_at - 1].timestamp - out[len(seen) - 1].timestamp <= buffer


@pytest.mark.parametrize("fps", [7.0, 25.0])
@pytest.mark.parametrize(("vx", "vy"), [(60.0, -30.0), (-90.0, 15.0)])
def test_velocity_is_floor_point_pixels_per_second(fps: float, vx: float, vy: float) -> None:
    frames = [person(300 + vx * k / fps, 300 + vy * k / fps) for k in range(int(3 * fps))]
    tracks = run(Tracker(), frames, fps)[-1]
    np.testing.assert_allclose(tracks.velocity[0], [vx, vy], atol=0.05 * max(abs(vx), abs(vy)))


def test_velocity_follows_the_feet_not_the_box_centre() -> None:
    # Top fixed, bottom moving down 20 px/s (walking towards the camera): the floor point
    # moves 20 px/s while the box centre moves only 10 px/s.
    fps = 10.0
    frames = [boxes_at((100, 100, 140, 200 + 20 * k / fps)) for k in range(40)]
    tracks = run(Tracker(), frames, fps)[-1]
    assert tracks.velocity[0, 1] == pytest.approx(20.0, abs=1.5)
    assert tracks.velocity[0, 0] == pytest.approx(0.0, abs=0.5)


def test_lost_ids_reported_once_and_reset_restarts_ids() -> None:
    tracker = Tracker(TrackerConfig(lost_buffer_seconds=0.5))
    out = run(tracker, [person(100, 300), person(100, 300)] + [Detections.empty()] * 10, fps=10)
    assert [int(i) for t in out for i in t.lost_ids] == [1]
    assert tracker.active_count == 0
    tracker.reset()
    again = run(tracker, [person(400, 300)] * 3, fps=10)
    assert again[-1].track_id.tolist() == [1]


@pytest.mark.parametrize(
    "bad",
    [
        {"high_score": 1.5},
        {"low_score": -0.1},
        {"low_score": 0.6, "high_score": 0.5},
        {"new_track_score": 0.3, "high_score": 0.5},
        {"match_iou": 0.0},
        {"min_hits": 0},
        {"lost_buffer_seconds": -1.0},
        {"lost_buffer_seconds": float("inf")},
        {"measurement_std": float("nan")},
        {"output_box": "centre"},
        {"max_age": 30},
        {"direction_weight": -0.1},
        {"direction_weight": float("nan")},
        {"confirm_score": 0.5},  # below new_track_score
        {"confirm_score": 1.5},
    ],
)
def test_bad_config_raises_value_error(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        TrackerConfig(**bad)


def test_bad_input_is_rejected_or_skipped() -> None:
    with pytest.raises(ValueError, match="TrackerConfig"):
        Tracker({"min_hits": 2})
    tracker = Tracker()
    tracker.update(person(100, 300), timestamp=1.0)
    with pytest.raises(ValueError, match="backwards"):
        tracker.update(person(100, 300), timestamp=0.5)
    with pytest.raises(ValueError, match="finite"):
        tracker.update(person(100, 300), timestamp=float("nan"))
    junk = Detections(
        np.array([[np.nan, 0, 10, 10], [5, 5, 5, 50], [0, 0, np.inf, 10], [100, 200, 140, 300]]),
        np.array([0.9, 0.9, 0.9, 0.9]),
        np.zeros(4, np.int64),
    )
    tracks = tracker.update(junk, timestamp=1.1)
    assert tracks.track_id.tolist() == [1]
    assert np.isfinite(tracks.xyxy).all() and np.isfinite(tracks.velocity).all()


@pytest.mark.parametrize("recovery", [False, True])
def test_walker_hidden_for_a_second_keeps_id_and_speed(recovery: bool) -> None:
    fps, speed = 10.0, 80.0
    frames = [
        Detections.empty() if 20 <= k < 30 else person(100 + speed * k / fps, 300)
        for k in range(34)
    ]
    tracker = Tracker(TrackerConfig(observation_recovery=recovery, coast_seconds=0.0))
    out = run(tracker, frames, fps)
    assert {int(i) for t in out for i in t.track_id} == {1}
    assert all(len(out[k]) == 0 for k in range(20, 30))
    assert out[30].track_id.tolist() == [1]
    assert out[-1].velocity[0, 0] == pytest.approx(speed, rel=0.1)


def test_coasting_reports_predicted_box_while_hidden() -> None:
    fps = 10.0
    frames = [person(100 + 5 * k, 300) for k in range(10)] + [Detections.empty()] * 4
    out = run(Tracker(TrackerConfig(coast_seconds=0.25)), frames, fps)
    shown = [len(t) for t in out[10:]]
    assert shown == [1, 1, 0, 0]
    # The predicted box keeps walking right at ~50 px/s.
    assert out[11].xyxy[0, 0] > out[9].xyxy[0, 0] + 5


# ---------------------------------------------------------------- generalisation mechanisms


def test_direction_consistency_is_the_cosine_to_each_detection() -> None:
    velocity = np.array([[50.0, 0.0], [0.0, 0.0]])
    centre = np.array([[100.0, 100.0], [100.0, 100.0]])
    detections = np.array([[120.0, 100.0], [80.0, 100.0], [100.0, 130.0]])
    cosine = direction_consistency(velocity, centre, detections, np.array([10.0, 10.0]))
    np.testing.assert_allclose(cosine[0], [1.0, -1.0, 0.0], atol=1e-9)
    np.testing.assert_array_equal(cosine[1], [0.0, 0.0, 0.0])  # standing: no direction


@pytest.mark.parametrize(("direction_weight", "walker_keeps_id"), [(0.0, False), (0.2, True)])
def test_velocity_direction_keeps_the_walker_when_someone_appears_behind(
    direction_weight: float, walker_keeps_id: bool
) -> None:
    # A walker (100 px/s at 10 fps) speeds up just as a person hidden behind them steps
    # out, standing: that box overlaps the prediction more, but lies behind the walker's
    # last sighting. Direction consistency keeps id 1 on the walker.
    fps = 10.0
    tracker = Tracker(TrackerConfig(direction_weight=direction_weight))
    frames = [person(100 + 10 * k, 300) for k in range(20)]
    last = 100 + 10 * 19
    for j in range(5):
        frames.append(
            Detections(
                np.concatenate([person(last - 4, 302).xyxy, person(last + 28 + 10 * j, 300).xyxy]),
                np.array([0.9, 0.9]),
                np.zeros(2, np.int64),
            )
        )
    out = run(tracker, frames, fps)[-1]
    walker_id = int(out.track_id[np.argmax(out.xyxy[:, 0])])
    assert (walker_id == 1) is walker_keeps_id


@pytest.mark.parametrize(("score", "shown_from"), [(0.95, 0), (0.75, 1)])
def test_confident_detection_is_confirmed_at_birth(score: float, shown_from: int) -> None:
    tracker = Tracker(TrackerConfig(min_hits=2, confirm_score=0.9))
    out = run(tracker, [person(100 + 5 * k, 300, score=score) for k in range(4)], fps=10)
    assert next(k for k, t in enumerate(out) if len(t)) == shown_from
    assert {int(i) for t in out for i in t.track_id} == {1}


@pytest.mark.parametrize("fps", [5.0, 7.0, 25.0])
def test_walker_hidden_for_a_second_keeps_id_with_the_defaults(fps: float) -> None:
    speed = 80.0
    frames = [
        Detections.empty() if 2.0 <= k / fps < 3.0 else person(100 + speed * k / fps, 300)
        for k in range(int(4 * fps))
    ]
    out = run(Tracker(), frames, fps)
    assert {int(i) for t in out for i in t.track_id} == {1}
    assert out[-1].velocity[0, 0] == pytest.approx(speed, rel=0.15)


# ------------------------------------------------------------- glimpse hold


def legs_behind_a_sign(fps: float, seconds: float, score: float = 0.2) -> list[Detections]:
    """Someone standing behind a sign: the detector only glimpses them (weak boxes)."""
    return [person(200, 300, score=score)] * round(seconds * fps)


@pytest.mark.parametrize("fps", [5.0, 7.0, 25.0])
@pytest.mark.parametrize("glimpse_hold", [True, False])
def test_glimpsed_person_is_held_unreported_past_the_lost_buffer(
    fps: float, glimpse_hold: bool
) -> None:
    tracker = Tracker(TrackerConfig(lost_buffer_seconds=1.0, glimpse_hold=glimpse_hold))
    seen = [person(200, 300)] * int(fps)
    gap = [Detections.empty()]  # lost: a weak box may no longer continue it
    out = run(tracker, [*seen, *gap, *legs_behind_a_sign(fps, 4.0)], fps)
    hidden = out[len(seen) :]
    assert all(len(t.track_id) == 0 for t in hidden)  # never reported: tracks unchanged
    lost = [int(i) for t in hidden for i in t.lost_ids]
    held = [t.held_ids.tolist() for t in hidden[-int(fps) :]]
    if glimpse_hold:
        assert lost == []
        assert held == [[1]] * int(fps)
    else:
        assert lost == [1]
        assert held == [[]] * int(fps)


def test_held_track_ends_a_lost_buffer_after_the_last_glimpse() -> None:
    fps = 10.0
    tracker = Tracker(TrackerConfig(lost_buffer_seconds=1.0))
    seen = [person(200, 300)] * 10
    glimpsed = [Detections.empty(), *legs_behind_a_sign(fps, 3.0)]
    out = run(tracker, [*seen, *glimpsed, *[Detections.empty()] * 15], fps)
    removed_at = next(k for k, t in enumerate(out) if len(t.lost_ids))
    last_glimpse = len(seen) + len(glimpsed) - 1
    assert out[removed_at].lost_ids.tolist() == [1]
    assert 1.0 < out[removed_at].timestamp - out[last_glimpse].timestamp <= 1.0 + 1 / fps


def test_held_track_ends_when_a_new_track_starts_on_its_spot() -> None:
    fps = 10.0
    tracker = Tracker(TrackerConfig(lost_buffer_seconds=1.0))
    seen = [person(200, 300)] * 10
    glimpsed = [Detections.empty(), *legs_behind_a_sign(fps, 2.0)]
    out = run(tracker, [*seen, *glimpsed, *[person(205, 300)] * 3], fps)
    back = out[len(seen) + len(glimpsed) :]
    assert back[0].lost_ids.tolist() == [1]  # the person is back under a new id
    assert back[-1].track_id.tolist() == [2]
    assert back[-1].held_ids.tolist() == []


def test_part_of_a_person_in_view_is_no_glimpse() -> None:
    # Person 1 vanishes; person 2 stands in the same column in front of that spot, and the
    # only leftover weak box is person 2's head and shoulders: nobody is glimpsed.
    fps = 10.0
    tracker = Tracker(TrackerConfig(lost_buffer_seconds=1.0))
    both = boxes_at((180, 200, 220, 300), (175, 230, 225, 355))
    front = boxes_at((175, 230, 225, 355))
    head = boxes_at((180, 200, 220, 245), score=0.2)
    frames = [both] * 10 + [front] + [_merge(front, head)] * 20
    out = run(tracker, frames, fps)
    assert [int(i) for t in out for i in t.lost_ids] == [1]
    assert all(t.held_ids.tolist() == [] for t in out)


def _merge(a: Detections, b: Detections) -> Detections:
    return Detections(
        np.concatenate([a.xyxy, b.xyxy]),
        np.concatenate([a.confidence, b.confidence]),
        np.concatenate([a.class_id, b.class_id]),
    )
