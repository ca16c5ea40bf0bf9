"""Generated shelf scenes with known truth, for the shelf benchmark and tests.

Two kinds, both deterministic for a seed:

* :func:`rendered_scene`: a drawn shelf (rows of coloured products on a textured
  back panel, seen in mild perspective) and person-shaped occluders that walk in,
  linger (reaching: an arm goes to the shelf) and leave, taking or putting back
  products; with lighting drift, sudden light switches, Gaussian noise and JPEG.
* :func:`pets_scene`: real PETS09-S2L1 frames with a rectangle of the plaza
  designated as a "shelf" holding pasted product patches; a product is removed
  or restored while a ground-truth person overlaps it (real people, real
  occlusion). Tracks are the ground-truth boxes.

A scene yields ``(image, tracks)`` pairs lazily and carries its truth events.
Tests import this module with ``benchmarks/`` on ``sys.path``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
from storesense.vision.detections import Tracks
from storesense.zones.events import Event, EventType
from storesense.zones.shelf import ShelfOptions

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("STORESENSE_SHARED", REPO_ROOT.parent / "shared")).resolve()
PETS_DIR = SHARED / "data" / "PETS09-S2L1"
PETS_FPS = 7.0

Image = npt.NDArray[np.uint8]
Cell = tuple[int, int]


@dataclass(frozen=True)
class TruthEvent:
    """What really happened: ``kind`` is an ``EventType`` value; ``time`` is when
    the person's visit ended (the shelf became clear); ``take_index`` (returns)
    is the index in the scene's truth list of the take it undoes."""

    kind: str
    track_id: int
    time: float
    cell: Cell | None = None
    take_index: int | None = None
    verifiable: bool = True
    """False for a visit the shelf was never seen clear before (or that never ends):
    its interaction is reported with outcome ``unverified``."""


@dataclass
class Scene:
    name: str
    zone_id: str
    polygon: list[tuple[float, float]]
    options: ShelfOptions
    fps: float
    frame_count: int
    render: Callable[[], Iterator[tuple[Image, Tracks]]]
    truth: list[TruthEvent] = field(default_factory=list)
    lighting_only: bool = False
    """No interaction at all: any take reported is a take from lighting alone."""
    no_change: bool = False
    """No product ever changes: any ``item_taken`` / ``item_returned`` is false."""

    def frames(self) -> Iterator[tuple[Image, Tracks]]:
        return self.render()


# --------------------------------------------------------------------------- rendered shelves

CANVAS = (640, 480)  # width, height
FACE = (480, 270)  # rendered shelf face, width, height
ROWS, COLS = 3, 8


@dataclass(frozen=True)
class Visit:
    """One person's visit. ``action``: take / return / browse / pass."""

    track_id: int
    start: float
    action: str
    slot: Cell
    linger: float = 2.5
    walk: float = 1.2
    from_left: bool = True


def _texture(
    rng: np.random.Generator, height: int, width: int, base: float, contrast: float
) -> npt.NDArray[np.float32]:
    noise = rng.normal(0, 1, (height // 4 + 1, width // 4 + 1, 3)).astype(np.float32)
    smooth = np.asarray(cv2.resize(noise, (width, height), interpolation=cv2.INTER_LINEAR))
    return np.asarray(base + contrast * smooth, np.float32)


class _ShelfRenderer:
    def __init__(self, rng: np.random.Generator, hard: bool = False) -> None:
        fw, fh = FACE
        self.back = _texture(rng, fh, fw, 120.0, 12.0)
        row_h = fh // ROWS
        slot_w = fw // COLS
        for r in range(1, ROWS + 1):
            self.back[min(r * row_h, fh) - 8 : min(r * row_h, fh)] = (60, 70, 80)
        self.products: list[tuple[Cell, tuple[int, int, int, int], npt.NDArray[np.float32]]] = []
        for r in range(ROWS):
            for c in range(COLS):
                size = (0.3, 0.45) if hard else (0.55, 0.8)
                w = int(slot_w * rng.uniform(*size))
                h = int((row_h - 8) * rng.uniform(size[0] + 0.1, size[1] + 0.05))
                x0 = c * slot_w + (slot_w - w) // 2
                y1 = (r + 1) * row_h - 8
                if hard:  # dull products close to the panel's grey
                    signs = rng.choice([-1.0, 1.0], 3)
                    colour = (120 + signs * rng.uniform(20, 40, 3)).astype(np.float32)
                    stripe = (120 - signs * rng.uniform(10, 30, 3)).astype(np.float32)
                else:
                    colour = rng.uniform(20, 235, 3).astype(np.float32)
                    stripe = 255 - colour
                patch = np.empty((h, w, 3), np.float32)
                patch[:] = colour
                patch[h // 3 : h // 3 + max(h // 5, 3)] = stripe
                patch += _texture(rng, h, w, 0.0, 10.0)
                self.products.append(((r, c), (x0, y1 - h, w, h), patch))
        margin = 80
        corners = np.asarray(
            [
                [margin, 60],
                [CANVAS[0] - margin, 60],
                [CANVAS[0] - margin, 60 + FACE[1]],
                [margin, 60 + FACE[1]],
            ],
            np.float32,
        )
        corners += rng.uniform(-14, 14, corners.shape).astype(np.float32)
        self.polygon = [(float(x), float(y)) for x, y in corners]
        src = np.asarray([[0, 0], [fw, 0], [fw, fh], [0, fh]], np.float32)
        self.homography = cv2.getPerspectiveTransform(src, corners)
        self.room = _texture(rng, CANVAS[1], CANVAS[0], 150.0, 8.0)
        self.room[380:] = _texture(rng, CANVAS[1] - 380, CANVAS[0], 95.0, 6.0)
        face_mask = cv2.warpPerspective(np.ones((fh, fw), np.float32), self.homography, CANVAS)
        self.face_mask = face_mask[..., None]
        self._cache: dict[frozenset[Cell], npt.NDArray[np.float32]] = {}

    def slot_centre(self, slot: Cell) -> tuple[float, float]:
        for cell, (x, y, w, h), _ in self.products:
            if cell == slot:
                point = np.asarray([[[x + w / 2, y + h / 2]]], np.float32)
                px, py = cv2.perspectiveTransform(point, self.homography)[0, 0]
                return float(px), float(py)
        raise KeyError(slot)

    def still(self, present: frozenset[Cell]) -> npt.NDArray[np.float32]:
        cached = self._cache.get(present)
        if cached is None:
            face = self.back.copy()
            for cell, (x, y, w, h), patch in self.products:
                if cell in present:
                    face[y : y + h, x : x + w] = patch
            warped = cv2.warpPerspective(face, self.homography, CANVAS, flags=cv2.INTER_LINEAR)
            cached = self.room * (1 - self.face_mask) + warped * self.face_mask
            self._cache[present] = cached
        return cached


def _person_box(visit: Visit, t: float, stand_x: float) -> tuple[npt.NDArray[np.float32], bool]:
    """Box (x0, y0, x1, y1) of the person at time t and whether they reach now."""
    width, height, feet = 120.0, 340.0, 470.0
    off = -width if visit.from_left else CANVAS[0] + width
    if visit.action == "pass":
        frac = (t - visit.start) / visit.walk
        span = CANVAS[0] + 2 * width
        x = -width + span * frac if visit.from_left else CANVAS[0] + width - span * frac
        return np.asarray([x - width / 2, feet - height, x + width / 2, feet], np.float32), False
    t_in, t_out = visit.start + visit.walk, visit.start + visit.walk + visit.linger
    if t < t_in:
        frac = (t - visit.start) / visit.walk
        x = off + (stand_x - off) * frac
    elif t <= t_out:
        x = stand_x
    else:
        frac = (t - t_out) / visit.walk
        x = stand_x + (off - stand_x) * frac
    reaching = t_in + 0.3 < t < t_out - 0.3
    return np.asarray([x - width / 2, feet - height, x + width / 2, feet], np.float32), reaching


def _visit_end(visit: Visit) -> float:
    if visit.action == "pass":
        return visit.start + visit.walk
    return visit.start + 2 * visit.walk + visit.linger


def _lighting(
    rng: np.random.Generator, frame_count: int, fps: float, switches: list[tuple[float, float]]
) -> npt.NDArray[np.float32]:
    """Per-frame per-channel gain: slow random drift plus sudden switches (time, level):
    from ``time`` on, the light is at ``level`` times the original."""
    drift = np.cumsum(rng.normal(0, 0.004, (frame_count, 1)), axis=0)
    tint = np.cumsum(rng.normal(0, 0.001, (frame_count, 3)), axis=0)
    gain = 1.0 + np.clip(drift, -0.2, 0.2) + np.clip(tint, -0.05, 0.05)
    times = np.arange(frame_count) / fps
    level = np.ones((frame_count, 1), np.float32)
    for when, factor in sorted(switches):
        level[times >= when] = factor
    gain = gain * level
    return np.asarray(gain, np.float32)


def rendered_scene(
    name: str,
    seed: int,
    visits: list[Visit],
    duration: float,
    *,
    switches: list[tuple[float, float]] | None = None,
    noise_sigma: float = 4.0,
    jpeg_quality: int = 70,
    fps: float = 10.0,
    initially_missing: frozenset[Cell] = frozenset(),
    hard: bool = False,
    tracks_from: float = 0.0,
    gradient: float = 0.0,
) -> Scene:
    """A rendered shelf scene following a script of visits; truth comes from the script.
    ``hard``: small (30–45 % of a slot), dull products close to the panel's colour.
    ``tracks_from``: no tracks before this time (a tracker confirming the people it
    finds when the camera starts). ``gradient``: light from one side that grows over
    the scene; at the end the right edge is ``1 + gradient`` times as bright as at the start.
    A visit that starts before 0 (someone at the shelf when the camera starts) cannot
    be verified: its interaction is expected with outcome ``unverified`` and no change."""
    rng = np.random.default_rng(seed)
    renderer = _ShelfRenderer(rng, hard)
    frame_count = int(duration * fps)
    gains = _lighting(rng, frame_count, fps, switches or [])
    colours = {v.track_id: rng.uniform(30, 220, 3).astype(np.float32) for v in visits}
    stand = {v.track_id: renderer.slot_centre(v.slot)[0] + rng.uniform(-15, 15) for v in visits}
    present = {cell for cell, _, _ in renderer.products} - set(initially_missing)
    truth: list[TruthEvent] = []
    changes: list[tuple[float, Cell, bool]] = []  # (time, slot, present after)
    open_takes: dict[Cell, int] = {}
    state = set(present)
    for visit in sorted(visits, key=lambda v: v.start):
        end = _visit_end(visit)
        if visit.action == "pass":
            continue
        if visit.start < 0:
            if visit.action != "browse":
                raise ValueError(f"{name}: a visit under way at the start can only browse")
            truth.append(TruthEvent("shelf_interaction", visit.track_id, end, verifiable=False))
            continue
        mid = visit.start + visit.walk + visit.linger / 2
        if visit.action == "take":
            if visit.slot not in state:
                raise ValueError(f"{name}: take from empty slot {visit.slot}")
            state.discard(visit.slot)
            changes.append((mid, visit.slot, False))
            truth.append(TruthEvent("item_taken", visit.track_id, end, visit.slot))
            open_takes[visit.slot] = len(truth) - 1
        elif visit.action == "return":
            if visit.slot in state:
                raise ValueError(f"{name}: return to a full slot {visit.slot}")
            state.add(visit.slot)
            changes.append((mid, visit.slot, True))
            truth.append(
                TruthEvent(
                    "item_returned",
                    visit.track_id,
                    end,
                    visit.slot,
                    open_takes.pop(visit.slot, None),
                )
            )
        truth.append(TruthEvent("shelf_interaction", visit.track_id, end))
    noise_rng = np.random.default_rng(seed + 1)
    noise_bank = noise_rng.normal(0, noise_sigma, (8, CANVAS[1] + 16, CANVAS[0] + 16, 3)).astype(
        np.float32
    )
    body_jitter = np.random.default_rng(seed + 2)
    ramp = np.linspace(0.0, 1.0, CANVAS[0], dtype=np.float32)[None, :, None]

    def render() -> Iterator[tuple[Image, Tracks]]:
        current = set(present)
        pending = sorted(changes)
        for index in range(frame_count):
            t = index / fps
            while pending and pending[0][0] <= t:
                _, slot, now_present = pending.pop(0)
                (current.add if now_present else current.discard)(slot)
            image = renderer.still(frozenset(current)).copy()
            boxes, ids, velocities = [], [], []
            for visit in visits:
                if not visit.start <= t <= _visit_end(visit):
                    continue
                sx = stand[visit.track_id]
                box, reaching = _person_box(visit, t, sx)
                prev, _ = _person_box(visit, max(t - 1 / fps, visit.start), sx)
                colour = colours[visit.track_id]
                x0, y0, x1, y1 = (int(v) for v in box)
                cv2.rectangle(image, (x0 + 10, y0 + 60), (x1 - 10, y1), colour.tolist(), -1)
                cv2.circle(image, ((x0 + x1) // 2, y0 + 32), 30, (140, 160, 200), -1)
                if reaching:
                    tx, ty = renderer.slot_centre(visit.slot)
                    cv2.line(
                        image, ((x0 + x1) // 2, y0 + 100), (int(tx), int(ty)), colour.tolist(), 22
                    )
                jitter = body_jitter.normal(0, 2.0, 4).astype(np.float32)
                boxes.append(box + jitter)
                ids.append(visit.track_id)
                velocities.append([(box[0] - prev[0]) * fps, 0.0])
            image = image * gains[index][None, None, :]
            if gradient:
                image = image * (1.0 + gradient * (index / max(frame_count - 1, 1)) * ramp)
            dy, dx = noise_rng.integers(0, 16, 2)
            image += noise_bank[index % 8, dy : dy + CANVAS[1], dx : dx + CANVAS[0]]
            image_u8 = np.clip(image, 0, 255).astype(np.uint8)
            ok, encoded = cv2.imencode(".jpg", image_u8, [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
            assert ok
            decoded = cv2.imdecode(encoded, cv2.IMREAD_COLOR)
            if t < tracks_from:
                boxes, ids, velocities = [], [], []
            tracks = Tracks(
                np.asarray(boxes, np.float32).reshape(-1, 4),
                np.ones(len(ids), np.float32),
                np.asarray(ids, np.int64),
                np.asarray(velocities, np.float32).reshape(-1, 2),
                timestamp=t,
                frame_index=index + 1,
            )
            yield np.asarray(decoded, np.uint8), tracks

    options = ShelfOptions(grid=(ROWS, COLS), reach_band_px=20.0, min_interaction_seconds=1.0)
    return Scene(
        name,
        "shelf",
        renderer.polygon,
        options,
        fps,
        frame_count,
        render,
        truth,
        lighting_only=not any(v.action != "pass" for v in visits),
        no_change=not any(v.action in ("take", "return") for v in visits),
    )


def random_script(
    seed: int, visit_count: int, *, gap: float = 2.5, two_people_every: int = 0
) -> tuple[list[Visit], float]:
    """A plausible random sequence of takes, put-backs, browses and passers-by."""
    rng = np.random.default_rng(seed)
    present = {(r, c) for r in range(ROWS) for c in range(COLS)}
    taken: list[Cell] = []
    visits: list[Visit] = []
    t = 1.5
    track = 1
    for number in range(visit_count):
        roll = rng.uniform()
        if roll < 0.12:
            action = "pass"
        elif taken and roll < 0.42:
            action = "return"
        elif roll < 0.75:
            action = "take"
        else:
            action = "browse"
        if action == "return":
            slot = taken.pop(int(rng.integers(len(taken))))
            present.add(slot)
        else:
            choices = sorted(present)
            slot = choices[int(rng.integers(len(choices)))]
            if action == "take":
                present.discard(slot)
                taken.append(slot)
        linger = float(rng.uniform(2.0, 4.0))
        visit = Visit(
            track,
            t,
            action,
            slot,
            linger=linger,
            walk=float(rng.uniform(0.8, 1.4)),
            from_left=bool(rng.uniform() < 0.5),
        )
        if action == "pass":
            visit = Visit(
                track,
                t,
                action,
                slot,
                walk=float(rng.uniform(1.0, 1.8)),
                from_left=bool(rng.uniform() < 0.5),
            )
        visits.append(visit)
        track += 1
        if two_people_every and number % two_people_every == 0 and action in ("take", "browse"):
            # a second person at the far end of the shelf at the same time, browsing
            far_col = 0 if slot[1] >= COLS // 2 else COLS - 1
            visits.append(
                Visit(
                    track,
                    t + 0.3,
                    "browse",
                    (slot[0], far_col),
                    linger=linger,
                    walk=visit.walk,
                    from_left=far_col == 0,
                )
            )
            track += 1
        t = _visit_end(visits[-1]) + gap + float(rng.uniform(0, 1.0))
    return visits, t + 1.5


def lighting_scene(seed: int, fps: float = 10.0) -> Scene:
    """Lights switched down and up, auto-exposure drift and passers-by; no interaction."""
    visits = [
        Visit(1, 4.0, "pass", (1, 3), walk=1.4),
        Visit(2, 13.0, "pass", (1, 3), walk=1.0, from_left=False),
    ]
    return rendered_scene(
        f"lighting-{seed}",
        seed,
        visits,
        20.0,
        switches=[(3.0, 0.6), (8.0, 1.5), (15.0, 0.75)],
        fps=fps,
    )


def occupied_start_scene(seed: int, fps: float = 10.0) -> Scene:
    """The camera starts while a shopper stands at the shelf, in front of the products,
    and the tracker needs a few frames to confirm them; then ordinary visits follow.
    The first view holds a person: the shelf must not arm on it (no false take when
    they leave); the later takes and put-backs must still be found."""
    rng = np.random.default_rng(500 + seed)
    first = Visit(1, -1.5, "browse", (1, int(rng.integers(2, COLS - 2))), linger=3.0, walk=1.0)
    script, duration = random_script(seed + 500, 8)
    shift = _visit_end(first) + 2.0
    visits = [first] + [
        Visit(v.track_id + 1, v.start + shift, v.action, v.slot, v.linger, v.walk, v.from_left)
        for v in script
    ]
    return rendered_scene(
        f"occupied-{seed}",
        seed + 500,
        visits,
        duration + shift,
        fps=fps,
        tracks_from=0.25,
        switches=[(float(rng.uniform(8, duration)), float(rng.choice([0.7, 1.3])))],
    )


def drift_scene(seed: int, fps: float = 10.0) -> Scene:
    """No product changes: shoppers browse and linger for long visits while the light
    drifts slowly and unevenly (sunlight from one side, +40 % over the scene), with a
    dim switch on top. Any take or put-back reported is false."""
    rng = np.random.default_rng(700 + seed)
    visits = []
    t = 1.0
    for track in range(1, 6):
        slot = (int(rng.integers(ROWS)), int(rng.integers(COLS)))
        linger = float(rng.uniform(6.0, 12.0))
        visits.append(Visit(track, t, "browse", slot, linger=linger, from_left=track % 2 == 0))
        t = _visit_end(visits[-1]) + float(rng.uniform(1.5, 3.0))
    return rendered_scene(
        f"drift-{seed}",
        seed + 700,
        visits,
        t + 1.5,
        fps=fps,
        gradient=0.4,
        switches=[(float(rng.uniform(5, t)), 0.8)],
    )


# --------------------------------------------------------------------------- PETS09 frames


def load_pets_gt(
    folder: Path = PETS_DIR,
) -> dict[int, list[tuple[int, float, float, float, float]]]:
    """Frame → [(id, x0, y0, x1, y1)] from MOT15 ``gt/gt.txt``."""
    table = np.loadtxt(folder / "gt" / "gt.txt", delimiter=",")
    boxes: dict[int, list[tuple[int, float, float, float, float]]] = {}
    for row in table:
        frame, tid, left, top, width, height = row[:6]
        boxes.setdefault(int(frame), []).append(
            (int(tid), float(left), float(top), float(left + width), float(top + height))
        )
    return boxes


def pets_scene(
    first_frame: int = 1,
    frame_count: int = 795,
    *,
    region: tuple[int, int, int, int] = (330, 250, 450, 330),
    seed: int = 0,
    folder: Path = PETS_DIR,
) -> Scene:
    """Real PETS09-S2L1 frames; ``region`` (x0, y0, x1, y1) is the "shelf" holding pasted
    product patches. During each visit by ground-truth people the script removes or restores
    one product under a reaching person's box (half-way through the visit)."""
    rng = np.random.default_rng(seed)
    gt = load_pets_gt(folder)
    x0, y0, x1, y1 = region
    cols = 3
    options = ShelfOptions(
        grid=(1, cols),
        reach_band_px=10.0,
        min_interaction_seconds=1.0,
        max_reach_speed=None,
        cell_px=32,
    )
    band = (x0 - 10, y0 - 10, x1 + 10, y1 + 10)
    frames = range(first_frame, first_frame + frame_count)
    fps = PETS_FPS

    def overlapping(frame: int) -> list[tuple[int, float, float, float, float]]:
        return [
            b
            for b in gt.get(frame, [])
            if min(b[3], band[2]) > max(b[1], band[0]) and min(b[4], band[3]) > max(b[2], band[1])
        ]

    cell_w = (x1 - x0) / cols
    patches = []
    for c in range(cols):
        w, h = int(cell_w * 0.6), int((y1 - y0) * 0.7)
        patch = np.empty((h, w, 3), np.float32)
        patch[:] = rng.uniform(20, 235, 3)
        patch[h // 3 : h // 3 + 6] = 255 - patch[0, 0]
        px, py = int(x0 + c * cell_w + (cell_w - w) / 2), int(y0 + (y1 - y0 - h) / 2)
        patches.append((px, py, np.clip(patch, 0, 255).astype(np.uint8)))
    # visits = runs of frames with anyone in the band; a gap shorter than the monitor's
    # confirmation (options.confirm_frames clear frames) does not end a visit
    needed_clear = max(options.confirm_frames, int(np.ceil(options.confirm_seconds * fps)) + 1)
    visits: list[tuple[int, int]] = []
    start: int | None = None
    clear_run = 0
    for frame in frames:
        busy = bool(overlapping(frame))
        if busy:
            if start is None:
                start = frame
            clear_run = 0
        elif start is not None:
            clear_run += 1
            if clear_run >= needed_clear:
                visits.append((start, frame - clear_run + 1))
                start = None
    if start is not None:
        visits.append((start, frames[-1] + 1))
    present = [True] * cols
    truth: list[TruthEvent] = []
    changes: dict[int, tuple[int, bool]] = {}
    open_takes: dict[int, int] = {}
    for begin, end in visits:
        reach: dict[int, float] = {}
        overlap = np.zeros((1 + max(b[0] for f in frames for b in gt.get(f, [])), cols))
        for frame in range(begin, end):
            for tid, bx0, by0, bx1, by1 in overlapping(frame):
                reach[tid] = reach.get(tid, 0.0) + (1 / fps if frame > begin else 0.0)
                for c, (px, py, product) in enumerate(patches):
                    h, w = product.shape[:2]
                    if bx1 > px and bx0 < px + w and by1 > py and by0 < py + h:
                        overlap[tid, c] += 1
        reachers = [tid for tid, secs in reach.items() if secs >= options.min_interaction_seconds]
        end_time = (end - 1) / fps
        verifiable = begin != first_frame and end != frames[-1] + 1
        for tid in sorted(reachers):
            truth.append(TruthEvent("shelf_interaction", tid, end_time, verifiable=verifiable))
        if not reachers or not verifiable:
            continue  # no reference seen yet, or the visit never ends: no change here
        candidates: list[tuple[int, int, int]] = []  # (frame, cell, track)
        for frame in range(begin + (end - begin) // 3, end):
            for tid, bx0, by0, bx1, by1 in overlapping(frame):
                others = [overlap[o, :] for o in reachers if o != tid]
                for c, (px, py, product) in enumerate(patches):
                    h, w = product.shape[:2]
                    covered = bx0 <= px and bx1 >= px + w and by0 <= py and by1 >= py + h
                    dominant = all(overlap[tid, c] >= 2 * other[c] for other in others)
                    if tid in reachers and covered and dominant:
                        candidates.append((frame, c, tid))
            if candidates:
                break
        if not candidates:
            continue
        mid, c, tid = candidates[int(rng.integers(len(candidates)))]
        if present[c]:
            present[c] = False
            truth.append(TruthEvent("item_taken", tid, end_time, (0, c)))
            open_takes[c] = len(truth) - 1
        else:
            present[c] = True
            truth.append(TruthEvent("item_returned", tid, end_time, (0, c), open_takes.pop(c)))
        changes[mid] = (c, present[c])
    initially = [True] * cols

    def render() -> Iterator[tuple[Image, Tracks]]:
        capture = cv2.VideoCapture(str(folder / "PETS09-S2L1.avi"))
        if not capture.isOpened():
            raise FileNotFoundError(folder / "PETS09-S2L1.avi")
        state = list(initially)
        previous: dict[int, tuple[float, float]] = {}
        try:
            for frame in range(1, frames[-1] + 1):
                ok, image = capture.read()
                if not ok:
                    break
                if frame < first_frame:
                    continue
                if frame in changes:
                    c, now_present = changes[frame]
                    state[c] = now_present
                people = gt.get(frame, [])
                original = image.copy()
                for c, (px, py, patch) in enumerate(patches):
                    if state[c]:
                        h, w = patch.shape[:2]
                        image[py : py + h, px : px + w] = patch
                for _, bx0, by0, bx1, by1 in people:  # people stand in front of products
                    ix0, iy0 = max(int(bx0), 0), max(int(by0), 0)
                    ix1, iy1 = int(bx1), int(by1)
                    image[iy0:iy1, ix0:ix1] = original[iy0:iy1, ix0:ix1]
                t = (frame - 1) / fps
                ids = [p[0] for p in people]
                boxes = np.asarray([p[1:] for p in people], np.float32).reshape(-1, 4)
                velocity = []
                for tid, bx0, _, bx1, by1 in people:
                    foot = ((bx0 + bx1) / 2, by1)
                    last = previous.get(tid, foot)
                    velocity.append([(foot[0] - last[0]) * fps, (foot[1] - last[1]) * fps])
                    previous[tid] = foot
                tracks = Tracks(
                    boxes,
                    np.ones(len(ids), np.float32),
                    np.asarray(ids, np.int64),
                    np.asarray(velocity, np.float32).reshape(-1, 2),
                    timestamp=t,
                    frame_index=frame,
                )
                yield np.asarray(image, np.uint8), tracks
        finally:
            capture.release()

    polygon = [
        (float(x0), float(y0)),
        (float(x1), float(y0)),
        (float(x1), float(y1)),
        (float(x0), float(y1)),
    ]
    return Scene(
        f"pets09-{region}", "plaza-shelf", polygon, options, fps, len(frames), render, truth
    )


def pets_tracker_tracks(first_frame: int, frame_count: int) -> list[Tracks]:
    """Our tracker (defaults) on the cached YOLOX-Nano detections, started at ``first_frame``
    as a camera would be: people present then are confirmed only after ``min_hits``."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from storesense.vision.tracking import Tracker
    from tracking_detections import load_sequence

    frames = load_sequence("PETS09-S2L1").frames
    tracker = Tracker()
    return [
        tracker.update(frames[f - 1], (f - 1) / PETS_FPS, f)
        for f in range(first_frame, min(first_frame + frame_count, len(frames) + 1))
    ]


def pets_untouched_scene(
    region: tuple[int, int, int, int],
    first_frame: int,
    frame_count: int = 300,
    *,
    products: bool = True,
    folder: Path = PETS_DIR,
) -> Scene:
    """Real PETS09-S2L1 footage where NOTHING on the "shelf" changes: people walk past,
    stand and leave in front of ``region`` (with fixed pasted products, or the bare
    plaza). Tracks come from our tracker on real detections, started at ``first_frame``
    (pick one with people in reach: the camera starts occupied). Any ``item_taken`` or
    ``item_returned`` is false."""
    x0, y0, x1, y1 = region
    cols = 3
    options = ShelfOptions(
        grid=(1, cols),
        reach_band_px=10.0,
        min_interaction_seconds=1.0,
        max_reach_speed=None,
        cell_px=32,
    )
    rng = np.random.default_rng(x0 * 7 + y0)
    patches = []
    cell_w = (x1 - x0) / cols
    for c in range(cols if products else 0):
        w, h = int(cell_w * 0.6), int((y1 - y0) * 0.7)
        patch = np.empty((h, w, 3), np.uint8)
        patch[:] = rng.uniform(20, 235, 3)
        patch[h // 3 : h // 3 + 6] = 255 - patch[0, 0]
        px, py = int(x0 + c * cell_w + (cell_w - w) / 2), int(y0 + (y1 - y0 - h) / 2)
        patches.append((px, py, patch))
    gt = load_pets_gt(folder)
    all_tracks = pets_tracker_tracks(first_frame, frame_count)

    def render() -> Iterator[tuple[Image, Tracks]]:
        capture = cv2.VideoCapture(str(folder / "PETS09-S2L1.avi"))
        if not capture.isOpened():
            raise FileNotFoundError(folder / "PETS09-S2L1.avi")
        try:
            capture.set(cv2.CAP_PROP_POS_FRAMES, first_frame - 1)
            for tracks in all_tracks:
                ok, image = capture.read()
                if not ok:
                    break
                original = image.copy()
                for px, py, patch in patches:
                    h, w = patch.shape[:2]
                    image[py : py + h, px : px + w] = patch
                # people (ground truth: whether or not the detector sees them) stand in front
                for _, bx0, by0, bx1, by1 in gt.get(int(tracks.frame_index), []):
                    ix0, iy0 = max(int(bx0), 0), max(int(by0), 0)
                    image[iy0 : int(by1), ix0 : int(bx1)] = original[iy0 : int(by1), ix0 : int(bx1)]
                yield np.asarray(image, np.uint8), tracks
        finally:
            capture.release()

    polygon = [
        (float(x0), float(y0)),
        (float(x1), float(y0)),
        (float(x1), float(y1)),
        (float(x0), float(y1)),
    ]
    kind = "products" if products else "bare"
    return Scene(
        f"untouched-{region}-f{first_frame}-{kind}",
        "plaza-shelf",
        polygon,
        options,
        PETS_FPS,
        len(all_tracks),
        render,
        [],
        no_change=True,
    )


def occupied_start_frame(region: tuple[int, int, int, int], folder: Path = PETS_DIR) -> int:
    """The first PETS09 frame with a ground-truth person in ``region``'s reach band."""
    x0, y0, x1, y1 = region
    gt = load_pets_gt(folder)
    for frame in sorted(gt):
        for _, bx0, by0, bx1, by1 in gt[frame]:
            if min(bx1, x1 + 10) > max(bx0, x0 - 10) and min(by1, y1 + 10) > max(by0, y0 - 10):
                return frame
    raise ValueError(f"nobody ever reaches {region}")


# --------------------------------------------------------------------------- scoring


@dataclass
class Score:
    """True positives, false positives and false negatives per event kind."""

    counts: dict[str, list[int]] = field(default_factory=dict)

    def add(self, kind: str, tp: int = 0, fp: int = 0, fn: int = 0) -> None:
        row = self.counts.setdefault(kind, [0, 0, 0])
        row[0] += tp
        row[1] += fp
        row[2] += fn

    def merge(self, other: Score) -> None:
        for kind, (tp, fp, fn) in other.counts.items():
            self.add(kind, tp, fp, fn)

    def precision(self, kind: str) -> float:
        tp, fp, _ = self.counts.get(kind, [0, 0, 0])
        return tp / (tp + fp) if tp + fp else 1.0

    def recall(self, kind: str) -> float:
        tp, _, fn = self.counts.get(kind, [0, 0, 0])
        return tp / (tp + fn) if tp + fn else 1.0


def score_events(
    truth: list[TruthEvent],
    events: list[Event],
    *,
    time_tolerance: float = 1.0,
) -> Score:
    """Match reported events to the truth: same kind and track, end time within
    ``time_tolerance``, the truth cell among (or next to) the reported cells; a return
    must also link to the event matched to the take it undoes."""
    score = Score()
    matched: dict[int, Event] = {}
    used: set[str] = set()
    order = sorted(range(len(truth)), key=lambda i: (truth[i].kind != "item_taken", i))
    for index in order:
        want = truth[index]
        for event in events:
            if event.event_id in used or str(event.type) != want.kind:
                continue
            if event.track_id != want.track_id or abs(event.timestamp - want.time) > time_tolerance:
                continue
            if want.cell is not None:
                cells = [tuple(c) for c in event.attributes.get("cells", [])]
                if not any(
                    max(abs(r - want.cell[0]), abs(c - want.cell[1])) <= 1 for r, c in cells
                ):
                    continue
            if want.kind == "item_returned":
                take = matched.get(want.take_index) if want.take_index is not None else None
                if take is None or event.attributes.get("take_event_id") != take.event_id:
                    continue
            matched[index] = event
            used.add(event.event_id)
            break
    for kind in ("item_taken", "item_returned", "shelf_interaction"):
        tp = sum(1 for i in matched if truth[i].kind == kind)
        fn = sum(1 for t in truth if t.kind == kind) - tp
        fp = sum(1 for e in events if str(e.type) == kind and e.event_id not in used)
        score.add(kind, tp, fp, fn)
    browse_truth = {
        (t.track_id, round(t.time, 1))
        for t in truth
        if t.kind == "shelf_interaction" and t.verifiable
    }
    changers = {(t.track_id, round(t.time, 1)) for t in truth if t.cell is not None}
    browse_truth -= changers
    browse_seen = {
        (e.track_id, round(e.timestamp, 1))
        for e in events
        if e.type == EventType.SHELF_INTERACTION and e.attributes.get("outcome") == "browse"
    }
    hits = 0
    for key in browse_seen:
        if any(key[0] == k[0] and abs(key[1] - k[1]) <= time_tolerance for k in browse_truth):
            hits += 1
    score.add("browse", hits, len(browse_seen) - hits, len(browse_truth) - hits)
    return score
