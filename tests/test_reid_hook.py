"""The opt-in re-id hook re-finds a member on real PETS09 frames and keeps nobody else's looks."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import pytest
from storesense.api.privacy.consent import Role, TrackKey
from storesense.api.privacy.hooks import HookDispatcher
from storesense.api.privacy.reid_hook import ReidHook
from storesense.vision.detections import Tracks
from storesense.vision.reid import ReidEmbedder

MEMBER_ID = 9  # PETS09 identity visible from frame 1 to 519
LOST_AT = 30
BACK_FROM, LAST_FRAME = 100, 130
NEW_ID_OFFSET = 1000
FPS = 7.0


@pytest.fixture(scope="module")
def pets_frames(pets09: Path) -> list[tuple[int, npt.NDArray[np.uint8], npt.NDArray[np.float64]]]:
    """(frame number, image, gt rows) of frames 1..LAST_FRAME."""
    gt = np.loadtxt(pets09 / "gt" / "gt.txt", delimiter=",")
    gt = gt[gt[:, 6] == 1]
    capture = cv2.VideoCapture(str(pets09 / "PETS09-S2L1.avi"))
    frames = []
    for number in range(1, LAST_FRAME + 1):
        ok, image = capture.read()
        assert ok
        frames.append((number, np.asarray(image, np.uint8), gt[gt[:, 0] == number]))
    capture.release()
    return frames


@pytest.fixture(scope="module")
def embedder(reid_path: Path) -> ReidEmbedder:
    return ReidEmbedder(reid_path, intra_op_threads=1)


def gt_tracks(
    rows: npt.NDArray[np.float64], number: int, id_offset: int = 0, lost: tuple[int, ...] = ()
) -> Tracks:
    boxes = np.column_stack(
        [rows[:, 2], rows[:, 3], rows[:, 2] + rows[:, 4], rows[:, 3] + rows[:, 5]]
    )
    return Tracks(
        boxes,
        np.ones(len(rows)),
        rows[:, 1].astype(np.int64) + id_offset,
        np.zeros((len(rows), 2)),
        timestamp=number / FPS,
        frame_index=number,
        lost_ids=np.array(lost, np.int64),
    )


def arrays_held(value: object, seen: set[int] | None = None) -> Iterator[npt.NDArray[np.generic]]:
    """Every numpy array reachable from an object's attributes and containers."""
    seen = set() if seen is None else seen
    if id(value) in seen:
        return
    seen.add(id(value))
    if isinstance(value, np.ndarray):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from arrays_held(item, seen)
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            yield from arrays_held(item, seen)
    elif hasattr(value, "__dict__") and not isinstance(value, ReidEmbedder | type):
        yield from arrays_held(vars(value), seen)


def test_member_is_refound_on_another_camera_and_nobody_elses_embedding_is_kept(
    pets_frames: list[tuple[int, npt.NDArray[np.uint8], npt.NDArray[np.float64]]],
    embedder: ReidEmbedder,
) -> None:
    hook = ReidHook(embedder=embedder)
    dispatcher = HookDispatcher([hook], reidentifier=hook, visit_gap_s=60)
    dispatcher.link(TrackKey("cam1", MEMBER_ID), "m-9", Role.MEMBER, timestamp=1 / FPS)
    for number, image, rows in pets_frames[:LOST_AT]:
        lost = (MEMBER_ID,) if number == LOST_AT else ()
        dispatcher.process("cam1", [], gt_tracks(rows, number, lost=lost), image)
    assert hook.template_tokens() == {"m-9"}
    assert dispatcher.member_of(TrackKey("cam1", MEMBER_ID)) is None

    refound_at = None
    for number, image, rows in pets_frames[BACK_FROM - 1 :]:
        dispatcher.process("cam2", [], gt_tracks(rows, number, NEW_ID_OFFSET), image)
        if refound_at is None and dispatcher.member_of(TrackKey("cam2", MEMBER_ID + NEW_ID_OFFSET)):
            refound_at = number
        for other in rows[:, 1].astype(int):
            if other != MEMBER_ID:
                assert dispatcher.member_of(TrackKey("cam2", other + NEW_ID_OFFSET)) is None
    print(f"re-found at frame {refound_at}")
    assert refound_at is not None, "the member was not re-found on the second camera"
    assert refound_at <= BACK_FROM + 2 * dispatcher.reid_stride

    held = list(arrays_held(hook))
    assert len(held) == 1 and held[0].shape == (256,)
    np.testing.assert_array_equal(held[0], hook._templates["m-9"])

    dispatcher.forget_member("m-9")
    assert hook.template_tokens() == set() and list(arrays_held(hook)) == []


def test_template_is_deleted_when_the_visit_ends(
    pets_frames: list[tuple[int, npt.NDArray[np.uint8], npt.NDArray[np.float64]]],
    embedder: ReidEmbedder,
) -> None:
    hook = ReidHook(embedder=embedder, template_size=2, template_stride=1)
    dispatcher = HookDispatcher([hook], reidentifier=hook, visit_gap_s=5)
    dispatcher.link(TrackKey("cam1", MEMBER_ID), "m-9", Role.MEMBER, timestamp=1 / FPS)
    for number, image, rows in pets_frames[:3]:
        lost = (MEMBER_ID,) if number == 3 else ()
        dispatcher.process("cam1", [], gt_tracks(rows, number, lost=lost), image)
    assert hook.template_tokens() == {"m-9"}
    dispatcher.process("cam1", [], Tracks.empty(timestamp=3 / FPS + 5.0))
    assert hook.template_tokens() == set() and list(arrays_held(hook)) == []


def test_no_search_runs_without_a_member_being_searched(
    pets_frames: list[tuple[int, npt.NDArray[np.uint8], npt.NDArray[np.float64]]],
    reid_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    embedder = ReidEmbedder(reid_path, intra_op_threads=1)
    hook = ReidHook(embedder=embedder)
    calls: list[int] = []
    original = embedder.embed_crops

    def counting(crops: list[npt.NDArray[np.uint8]]) -> npt.NDArray[np.float32]:
        calls.append(len(crops))
        return original(crops)

    monkeypatch.setattr(embedder, "embed_crops", counting)
    dispatcher = HookDispatcher([hook], reidentifier=hook)
    for number, image, rows in pets_frames[:10]:
        dispatcher.process("cam1", [], gt_tracks(rows, number), image)
    assert calls == []


@pytest.mark.parametrize("kwargs", [{"threshold": 1.5}, {"template_size": 0}])
def test_bad_parameters(embedder: ReidEmbedder, kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        ReidHook(embedder=embedder, **kwargs)
