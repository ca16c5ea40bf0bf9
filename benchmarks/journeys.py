"""Journey accuracy on PETS09-S2L1: paths and transitions of ours and of the peers' tracks.

Truth: the ground-truth tracks (``gt.txt``, every annotated person, as in
``benchmarks/counting.py``) through the same zone engine (re-link off: the truth
has no fragments) and the same path rules (feet point, ``path_min_seconds``).
Then, in the same run, the tracks of

* ours: YOLOX-Nano (score >= 0.1, the service's default) + our tracker with its
  defaults, through :class:`~storesense.zones.camera.CameraAnalytics` (zone engine,
  re-link, :class:`~storesense.zones.journeys.VisitLinker`) and
  :func:`~storesense.zones.journeys.summarise_journeys`;
* the peers (supervision ByteTrack, trackers ByteTrack, trackers OC-SORT, run as in
  ``benchmarks/tracking.py`` on the same cached detections) through exactly the same
  code after the tracker;
* every tracker again with the journey-level linking off ("raw": the zone events
  chained per engine visit, only the zone engine's 1 s re-link), and ours with only the
  short-gap link (``link_hidden_seconds`` and ``link_overlap_seconds`` 0: the linker
  before the hidden and overlap hand-overs) and with the feet taken from the boxes as
  detected ("feet as detected": no :class:`~storesense.zones.amodal.AmodalBoxes`
  hidden-legs correction in the zone engine), for a before/after in one run.

Scores per layout (``examples/journeys_*.yaml``): the transition error (sum of
|ours - truth| over all pairs / total truth transitions), the path agreement
(sum over paths of min(ours, truth) / max(our visits, true visits)) and the
**per-person** transition error: each visit is given to the annotated person its boxes
followed most (IoU >= 0.5), and the sum over people of |their visits' transitions - their
true transitions| (a visit given to nobody: all its transitions) over the total truth.
The store-wide transition error lets one person's extra A->B cancel another's missing
A->B; the per-person one does not, so it shows what linking fragments does to each path.

The layouts come in two folds, pooled separately: the four the linker's design was
studied on (``DESIGN``) and the ones added afterwards (held out: ``aisles`` and ``shop``).

The **noise floor** at the end: the truth against itself with every annotated box moved
by independent Gaussian noise of sigma px per frame (x and y, 3 seeds): how much of the
transition error a feet point that far from the annotation costs through the path rule
alone (a stay near ``path_min_seconds`` flips either way), whatever the tracker. A
detector's box is not off the annotation independently per frame but by an offset that
lasts: the **drifting** noise floor moves every annotated box by a per-person offset
as large (sigma px) and as lasting (correlation time tau s) as ours is from the annotated
boxes, both measured in the same run (:func:`feet_error`; 6 seeds, median and range).

``--diagnose`` also prints, per layout, the pairs ours and the truth count differently and
every person whose transitions differ, with each stay (zone, video frames, seconds) of
the truth and of the visits given to that person: which stay crossed
``path_min_seconds`` one way and not the other.

``--step K`` keeps every K-th frame of the video, its detections and its annotations
(7 fps / K on PETS09, capture times kept): a camera sampled more sparsely, where a stay
is measured in coarser steps; truth, ours and the peers all see the same frames.

Run: ``python benchmarks/journeys.py`` (~20 s; the detections are cached in
``benchmarks/results/`` by ``tracking_detections.py``).
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import math
import sys
from collections import Counter, defaultdict
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import numpy.typing as npt
from scipy.optimize import linear_sum_assignment

sys.path.insert(0, str(Path(__file__).resolve().parent))

from counting import _iou as box_iou
from counting import border_band, in_border_band, load_gt_tracks
from storesense.vision.detections import Detections, Tracks
from storesense.vision.tracking import Tracker, TrackerConfig
from storesense.zones.camera import CameraAnalytics
from storesense.zones.config import StoreLayout, load_layout
from storesense.zones.engine import ZoneEngine
from storesense.zones.events import Event
from storesense.zones.journeys import (
    JourneySummary,
    VisitLinker,
    ZoneStay,
    exit_visits,
    merge_stays,
    path_agreement,
    path_of,
    summarise_journeys,
    transition_error,
    visit_paths,
    visit_stays,
)
from tracking import PEERS, run_tracker
from tracking_detections import RESULTS, SequenceDetections, load_sequence
from tracking_eval import TrackRow

ROOT = Path(__file__).resolve().parents[1]
LAYOUTS = sorted((ROOT / "examples").glob("journeys_*.yaml"))
DESIGN = ("bands", "grid", "islands", "quadrants")
"""The layouts the journey linker's hand-overs were studied on; every other one is held out."""
CAMERA = "cam1"
FRAME_SIZE = (768, 576)
SERVICE_SCORE_THRESHOLD = 0.1
"""The detector's default score threshold (what ``storesense serve`` and ``count`` use)."""


def sampled(name: str, step: int = 1) -> tuple[SequenceDetections, list[Tracks]]:
    """A sequence's detections and annotations on every ``step``-th frame (from the first),
    at ``fps / step``: frame i of the result is frame i x step of the video, at its time."""
    if step < 1:
        raise ValueError(f"step must be >= 1, got {step}")
    sequence = load_sequence(name)
    gt = load_gt_tracks(
        sequence.folder / "gt" / "gt.txt",
        sequence.fps,
        len(sequence.frames),
        with_dont_care=True,
    )
    fewer = dataclasses.replace(sequence, fps=sequence.fps / step, frames=sequence.frames[::step])
    return fewer, gt[::step]


def rows_to_tracks(rows: list[TrackRow], fps: float) -> list[Tracks]:
    """A peer's per-frame output as :class:`Tracks` (velocity from the last sighting)."""
    out: list[Tracks] = []
    previous: dict[int, tuple[float, np.ndarray]] = {}
    for index, row in enumerate(rows):
        now = index / fps
        feet = np.column_stack([(row.xyxy[:, 0] + row.xyxy[:, 2]) / 2, row.xyxy[:, 3]])
        velocity = np.zeros((len(row.ids), 2))
        for r, track_id in enumerate(row.ids.tolist()):
            if track_id in previous:
                then, where = previous[track_id]
                velocity[r] = (feet[r] - where) / (now - then)
            previous[track_id] = (now, feet[r])
        out.append(Tracks(row.xyxy, np.ones(len(row.ids)), row.ids, velocity, timestamp=now))
    return out


def our_tracks(
    frames: list[Detections], fps: float, config: TrackerConfig | None = None
) -> list[Tracks]:
    tracker = Tracker(config)
    out = []
    for index, detections in enumerate(frames):
        keep = detections.confidence >= SERVICE_SCORE_THRESHOLD
        out.append(tracker.update(detections[keep], timestamp=index / fps, frame_index=index + 1))
    return out


class _BorderBlindEngine(ZoneEngine):
    """The zone engine with people whose box lies within ``band`` px of the picture's
    left or right edge in no zone (their feet far outside every zone for that frame):
    the don't-care of ``counting.py``'s zone figures. Tracking, re-link and lines are
    unchanged."""

    band = 0.0
    _blind: npt.NDArray[np.bool_] = np.zeros(0, np.bool_)

    def update(self, tracks: Tracks) -> list[Event]:
        # The hidden-legs correction moves only the bottom edge: the band test holds after it.
        self._blind = in_border_band(np.asarray(tracks.xyxy), self.band)
        return super().update(tracks)

    def _update_zones(
        self,
        slots: npt.NDArray[np.int64],
        ids: list[int],
        anchors: npt.NDArray[np.float64],
        velocity: npt.NDArray[np.float32],
        now: float,
    ) -> list[Event]:
        if self._blind.any():
            anchors = anchors.copy()
            anchors[self._blind] = -1e9
        return super()._update_zones(slots, ids, anchors, velocity, now)


def journey_events(
    layout: StoreLayout,
    tracks: list[Tracks],
    *,
    link: bool,
    relink: bool = True,
    gap_only: bool = False,
    amodal: bool = True,
    border: float | None = None,
) -> list[Event]:
    """Events of the layout's camera for these tracks, visit ids stamped when ``link``
    (only across short gaps when ``gap_only``); ``amodal=False``: the zone engine takes
    the feet from the boxes as given (no hidden-legs correction); ``border`` (px): people
    whose box is that close to the left or right edge are in no zone (see
    :class:`_BorderBlindEngine`)."""
    data = layout.model_dump(mode="json")
    if not link:
        data["store"]["journeys"]["link_seconds"] = 0.0
    if gap_only:
        data["store"]["journeys"]["link_hidden_seconds"] = 0.0
        data["store"]["journeys"]["link_overlap_seconds"] = 0.0
    if not relink:
        for camera in data["cameras"]:
            camera["relink_seconds"] = 0.0
    layout = StoreLayout.model_validate(data)
    analytics = CameraAnalytics(layout, CAMERA, shelves=False, frame_size=FRAME_SIZE)
    if border is not None:
        blind = _BorderBlindEngine(layout, CAMERA)
        blind.frame_size, blind.band = FRAME_SIZE, border
        analytics.zone_engine = blind
    if not amodal:
        analytics.zone_engine.amodal = None
    events: list[Event] = []
    frames = ((None, t) for t in tracks)
    from storesense.api.runtime import summarise_frames

    summarise_frames(layout, CAMERA, frames, analytics, sink=events.append)
    return events


def track_people(tracks: list[Tracks], gt: list[Tracks]) -> dict[int, Counter[int]]:
    """Per track id, how many frames it followed each annotated person (IoU >= 0.5)."""
    people: dict[int, Counter[int]] = defaultdict(Counter)
    for ours, truth in zip(tracks, gt, strict=True):
        if len(ours.track_id) == 0 or len(truth.track_id) == 0:
            continue
        iou = box_iou(ours.xyxy.astype(np.float64), truth.xyxy.astype(np.float64))
        best = iou.argmax(axis=1)
        for row, track_id in enumerate(ours.track_id.tolist()):
            if iou[row, best[row]] >= 0.5:
                people[int(track_id)][int(truth.track_id[best[row]])] += 1
    return people


def person_transition_error(
    layout: StoreLayout,
    events: list[Event],
    truth_events: list[Event],
    people: dict[int, Counter[int]],
) -> float:
    """Sum over annotated people of |transitions of the visits given to them - their true
    transitions| (visits given to nobody count in full), over all true transitions."""
    settings = layout.store.journeys
    follows: dict[str, Counter[int]] = defaultdict(Counter)
    for event, visit in exit_visits(events):
        follows[visit].update(people.get(event.track_id, Counter()))
    ours: dict[int | None, Counter[tuple[str, str]]] = defaultdict(Counter)
    paths = visit_paths(events, settings.path_min_seconds, settings.path_gap_seconds)
    for visit, path in paths.items():
        person = follows[visit].most_common(1)[0][0] if follows[visit] else None
        ours[person].update(itertools.pairwise(path))
    truth: dict[int | None, Counter[tuple[str, str]]] = defaultdict(Counter)
    true_paths = visit_paths(truth_events, settings.path_min_seconds, settings.path_gap_seconds)
    for visit, path in true_paths.items():
        truth[int(visit.rsplit(":", 1)[1])].update(itertools.pairwise(path))
    total = sum(sum(pairs.values()) for pairs in truth.values())
    wrong = 0
    for person in set(ours) | set(truth):
        mine, real = ours.get(person, Counter()), truth.get(person, Counter())
        wrong += sum(abs(mine[pair] - real[pair]) for pair in set(mine) | set(real))
    return wrong / total if total else 0.0


def diagnose(
    layout: StoreLayout,
    events: list[Event],
    truth_events: list[Event],
    people: dict[int, Counter[int]],
    video_fps: float,
) -> list[str]:
    """Lines for ``--diagnose``: the pairs ours and the truth count differently, then each
    annotated person whose transitions differ (ours: the visits given to them, as in
    :func:`person_transition_error`), with every merged stay as
    zone[first frame-last frame: seconds] (video frames, 1-based)."""
    settings = layout.store.journeys
    minimum, gap = settings.path_min_seconds, settings.path_gap_seconds
    ours, truth = visit_stays(events), visit_stays(truth_events)
    follows: dict[str, Counter[int]] = defaultdict(Counter)
    for event, visit in exit_visits(events):
        follows[visit].update(people.get(event.track_id, Counter()))
    given: dict[int | None, list[str]] = defaultdict(list)
    for visit in ours:
        given[follows[visit].most_common(1)[0][0] if follows[visit] else None].append(visit)

    def pairs(stays: Iterable[list[ZoneStay]]) -> Counter[tuple[str, str]]:
        return Counter(p for s in stays for p in itertools.pairwise(path_of(s, minimum, gap)))

    def shown(stays: list[ZoneStay]) -> str:
        return " ".join(
            f"{s.zone}[{round(s.entered * video_fps) + 1}-{round(s.exited * video_fps)}:"
            f"{s.seconds:.2f}]"
            for s in merge_stays(stays, gap)
        )

    mine, real = pairs(ours.values()), pairs(truth.values())
    wrong = {f"{a}->{b}": mine[(a, b)] - real[(a, b)] for a, b in sorted(mine | real)}
    lines = [f"  ours - truth: { ({k: v for k, v in wrong.items() if v}) }"]
    persons = {int(key.rsplit(":", 1)[1]) for key in truth} | {p for p in given if p is not None}
    for person in sorted(persons):
        theirs = truth.get(f"{CAMERA}:{person}", [])
        visits = given.get(person, [])
        if pairs([theirs]) == pairs(ours[v] for v in visits):
            continue
        lines.append(f"  person {person}: truth {path_of(theirs, minimum, gap)}")
        lines.append(f"    truth      {shown(theirs)}")
        for visit in visits:
            lines.append(f"    {visit:<10} {shown(ours[visit])}")
    for visit in given.get(None, []):
        lines.append(f"  nobody's visit {visit}: {shown(ours[visit])}")
    return lines


def visit_continuity(
    tracks: list[Tracks], gt: list[Tracks], fps: float, frame_size: tuple[int, int], **link: float
) -> tuple[int, int, int]:
    """People followed for at least 1 s, visits split off a person (a person with n visits
    adds n - 1) and visits wrongly joined (a visit over n people adds n - 1), with the
    :class:`VisitLinker` settings ``link`` (each track given to the person it followed most)."""
    linker = VisitLinker("c", frame_size=frame_size, **link)
    visit_of: dict[int, str] = {}
    for frame in tracks:
        linker.update(frame)
        for track_id in frame.track_id.tolist():
            visit_of[int(track_id)] = linker.visit_of(track_id)
    visits: dict[int, set[str]] = defaultdict(set)
    people: dict[str, set[int]] = defaultdict(set)
    for track_id, followed in track_people(tracks, gt).items():
        person, frames = followed.most_common(1)[0]
        if frames >= fps:
            visits[person].add(visit_of[track_id])
            people[visit_of[track_id]].add(person)
    return (
        len(visits),
        sum(len(v) - 1 for v in visits.values()),
        sum(len(p) - 1 for p in people.values()),
    )


def continuity_table(step: int = 1) -> None:
    """Splits and wrong joins of visits on both sequences (TUD-Campus: 2.8 s, too short
    for paths, but a check that the hand-overs join no two people)."""
    print("\nvisit continuity (people followed >= 1 s / visits split off / wrongly joined):")
    variants = {
        "linked": {},
        "gap link only": {"hidden_seconds": 0.0, "overlap_seconds": 0.0},
        "raw": {"link_seconds": 0.0},
    }
    print(f"  {'sequence':<12} {'tracks':<24}" + "".join(f"{v:>16}" for v in variants))
    for name, frame_size in (("PETS09-S2L1", FRAME_SIZE), ("TUD-Campus", (640, 480))):
        sequence, gt = sampled(name, step)
        runs = {"storesense": our_tracks(sequence.frames, sequence.fps)}
        for peer, build in PEERS.items():
            runs[peer] = rows_to_tracks(run_tracker(build, sequence)[0], sequence.fps)
        for label, per_frame in runs.items():
            cells = [
                "{} / {} / {}".format(
                    *visit_continuity(per_frame, gt, sequence.fps, frame_size, **link)
                )
                for link in variants.values()
            ]
            print(f"  {name:<12} {label:<24}" + "".join(f"{c:>16}" for c in cells))


FLOOR_SIGMAS_PX = (2.0, 4.0)
FLOOR_SEEDS = 3


def jittered(tracks: list[Tracks], sigma: float, seed: int) -> list[Tracks]:
    """The tracks with every box moved by N(0, sigma) px in x and y, drawn per box."""
    rng = np.random.default_rng(seed)
    out = []
    for frame in tracks:
        xyxy = np.asarray(frame.xyxy, np.float64).copy()
        shift = rng.normal(0.0, sigma, (len(xyxy), 2))
        xyxy[:, [0, 2]] += shift[:, :1]
        xyxy[:, [1, 3]] += shift[:, 1:]
        out.append(dataclasses.replace(frame, xyxy=xyxy))
    return out


def feet_error(tracks: list[Tracks], gt: list[Tracks]) -> tuple[float, float]:
    """How far our feet points lie from the annotated ones, and for how long an offset
    lasts: the standard deviation (px, x and y pooled) of ours - annotation over every box
    that follows an annotated one (IoU >= 0.5), and the lag (s) at which the offset's
    autocorrelation falls to 1/e (linear between frames; 0 s for no offset at all)."""
    offsets: dict[tuple[int, int], dict[int, np.ndarray]] = defaultdict(dict)
    for index, (ours, truth) in enumerate(zip(tracks, gt, strict=True)):
        if len(ours.track_id) == 0 or len(truth.track_id) == 0:
            continue
        iou = box_iou(ours.xyxy.astype(np.float64), truth.xyxy.astype(np.float64))
        best = iou.argmax(axis=1)
        for row, column in enumerate(best.tolist()):
            if iou[row, column] < 0.5:
                continue
            mine, real = ours.xyxy[row].astype(np.float64), truth.xyxy[column].astype(np.float64)
            offset = np.array([(mine[0] + mine[2] - real[0] - real[2]) / 2, mine[3] - real[3]])
            offsets[(int(ours.track_id[row]), int(truth.track_id[column]))][index] = offset
    pooled = np.array([o for frames in offsets.values() for o in frames.values()])
    mean, sigma = pooled.mean(axis=0), float(pooled.std())
    if sigma == 0:
        return 0.0, 0.0
    fps = (len(tracks) - 1) / (tracks[-1].timestamp - tracks[0].timestamp)
    previous = 1.0
    for lag in range(1, len(tracks)):
        pairs = [
            (frames[i] - mean, frames[i + lag] - mean)
            for frames in offsets.values()
            for i in frames
            if i + lag in frames
        ]
        if not pairs:
            break
        a, b = (np.array(side) for side in zip(*pairs, strict=True))
        correlation = float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))
        if correlation <= 1 / math.e:
            between = (previous - 1 / math.e) / (previous - correlation)
            return sigma, (lag - 1 + between) / fps
        previous = correlation
    return sigma, math.inf


def drifted(tracks: list[Tracks], sigma: float, tau: float, seed: int) -> list[Tracks]:
    """The tracks with every box moved by an offset that drifts per track id: x and y each
    a Gauss-Markov process of standard deviation sigma px whose correlation falls to 1/e
    in tau s (like a detector's box, off the annotation by a few pixels for a while)."""
    rng = np.random.default_rng(seed)
    state: dict[int, tuple[float, np.ndarray]] = {}
    out = []
    for frame in tracks:
        xyxy = np.asarray(frame.xyxy, np.float64).copy()
        now = float(frame.timestamp)
        for row, track_id in enumerate(frame.track_id.tolist()):
            fresh = rng.normal(0.0, sigma, 2)
            if track_id in state:
                then, offset = state[track_id]
                keep = math.exp(-(now - then) / tau) if tau > 0 else 0.0
                fresh = keep * offset + math.sqrt(1 - keep * keep) * fresh
            state[track_id] = (now, fresh)
            xyxy[row, [0, 2]] += fresh[0]
            xyxy[row, [1, 3]] += fresh[1]
        out.append(dataclasses.replace(frame, xyxy=xyxy))
    return out


DRIFT_SEEDS = 10


def with_boxes_of(gt: list[Tracks], tracks: list[Tracks], min_iou: float = 0.5) -> list[Tracks]:
    """The truth with every annotated box that one of ``tracks``' boxes follows (one to one,
    the pairing of most total IoU, each pair IoU >= ``min_iou``) replaced by that box: those
    boxes' positions with the truth's identities, and the annotation where no box follows it."""
    out = []
    for truth, ours in zip(gt, tracks, strict=True):
        xyxy = np.asarray(truth.xyxy, np.float64).copy()
        if len(xyxy) and len(ours.track_id):
            mine = np.asarray(ours.xyxy, np.float64)
            iou = box_iou(xyxy, mine)
            for row, column in zip(*linear_sum_assignment(-iou), strict=True):
                if iou[row, column] >= min_iou:
                    xyxy[row] = mine[column]
        out.append(dataclasses.replace(truth, xyxy=xyxy))
    return out


def noise_floor(
    gt: list[Tracks],
    layouts: dict[str, StoreLayout],
    drift: tuple[float, float],
    ours: list[Tracks] | None = None,
) -> dict[str, list[dict[str, float]]]:
    """Transition error of the truth against the truth with jittered boxes (independent
    noise per frame) and with drifting boxes (``drift``: sigma px, tau s, see
    :func:`drifted`), per fold (printed; returned as {noise: [{fold: error} per seed]});
    with ``ours``, also against the truth with our boxes put in (:func:`with_boxes_of`):
    what our boxes' positions cost with every identity right."""
    truth = {
        name: journeys_of(layout, journey_events(layout, gt, link=False, relink=False))
        for name, layout in layouts.items()
    }
    totals = {
        n: sum(v for row in t.transitions.values() for v in row.values()) for n, t in truth.items()
    }
    folds = {
        "design": [n for n in layouts if n in DESIGN],
        "held out": [n for n in layouts if n not in DESIGN],
        "all": list(layouts),
    }

    def errors(noisy: list[Tracks]) -> dict[str, float]:
        wrong = {}
        for name, layout in layouts.items():
            ours = journeys_of(layout, journey_events(layout, noisy, link=False, relink=False))
            wrong[name] = transition_error(ours.transitions, truth[name].transitions) * totals[name]
        return {
            fold: round(sum(wrong[n] for n in names) / total, 4)
            for fold, names in folds.items()
            if (total := sum(totals[n] for n in names))
        }

    print("\nnoise floor: the truth against itself with its boxes jittered by N(0, sigma) px:")
    print(f"  {'sigma':<8} {'seed':<6}{'design':>10}{'held out':>10}{'all':>10}")
    floor: dict[str, list[dict[str, float]]] = {}
    for sigma in FLOOR_SIGMAS_PX:
        for seed in range(FLOOR_SEEDS):
            row = errors(jittered(gt, sigma, seed))
            floor.setdefault(f"{sigma:g}", []).append(row)
            print(f"  {sigma:<8g} {seed:<6}" + "".join(f"{e:10.1%}" for e in row.values()))
    sigma, tau = drift
    print(
        f"\nnoise floor, drifting: the truth against itself with its boxes moved by an offset "
        f"as large and as lasting as ours (sigma {sigma:.1f} px, correlation time {tau:.2f} s):"
    )
    print(f"  {'seed':<15}{'design':>10}{'held out':>10}{'all':>10}")
    key = f"drift {sigma:.1f} px {tau:.2f} s"
    for seed in range(DRIFT_SEEDS):
        row = errors(drifted(gt, sigma, tau, seed))
        floor.setdefault(key, []).append(row)
        print(f"  {seed:<15}" + "".join(f"{e:10.1%}" for e in row.values()))
    spread = {fold: [row[fold] for row in floor[key]] for fold in floor[key][0]}
    print(f"  {'median':<15}" + "".join(f"{float(np.median(v)):10.1%}" for v in spread.values()))
    for label, pick in (("min", min), ("max", max)):
        print(f"  {label:<15}" + "".join(f"{pick(v):10.1%}" for v in spread.values()))
    if ours is not None:
        row = errors(with_boxes_of(gt, ours))
        floor["our boxes, true identities"] = [row]
        print(
            "\nthe truth with each annotated box replaced by our box that follows it (IoU >= 0.5;"
            " identities, and the frames we miss, as annotated):\n"
            f"  {'':<15}" + "".join(f"{e:10.1%}" for e in row.values())
        )
    return floor


def journeys_of(layout: StoreLayout, events: list[Event]) -> JourneySummary:
    settings = layout.store.journeys
    return summarise_journeys(
        events,
        path_min_seconds=settings.path_min_seconds,
        path_gap_seconds=settings.path_gap_seconds,
        path_max_length=1000,
    )


def border_view(
    gt: list[Tracks],
    tracks: dict[str, list[Tracks]],
    band: float,
    folds: dict[str, list[str]],
) -> dict[str, dict[str, float]]:
    """The transition error (linked visits) with people within ``band`` px of the left or
    right edge in no zone, for the truth and every tracker alike (printed; returned per
    fold and tracker): ``gt.txt`` labels a person only while their whole box is in the
    picture, so a stay that begins or ends there is measured from a later (or to an
    earlier) frame in the truth than for a detector that sees the person walk in."""
    wrong: dict[str, dict[str, float]] = defaultdict(dict)
    totals: dict[str, int] = {}
    for layout_path in LAYOUTS:
        layout = load_layout(layout_path)
        name = layout_path.stem.removeprefix("journeys_")
        truth = journeys_of(
            layout, journey_events(layout, gt, link=False, relink=False, border=band)
        )
        totals[name] = sum(n for row in truth.transitions.values() for n in row.values())
        for label, per_frame in tracks.items():
            ours = journeys_of(layout, journey_events(layout, per_frame, link=True, border=band))
            wrong[label][name] = (
                transition_error(ours.transitions, truth.transitions) * totals[name]
            )
    pooled = {
        fold: {
            label: round(sum(errors[n] for n in names) / sum(totals[n] for n in names), 4)
            for label, errors in wrong.items()
        }
        for fold, names in folds.items()
        if names
    }
    print(
        f"\ntransition error with people within {band:.1f} px of the left or right edge in no "
        "zone (truth and trackers alike; the band where gt.txt labels nobody, as counting.py):"
    )
    print(f"  {'tracks':<34}" + "".join(f"{f'{fold} ({len(folds[fold])})':>16}" for fold in pooled))
    for label in sorted(wrong, key=lambda item: pooled["all"][item]):
        print(f"  {label:<34}" + "".join(f"{pooled[fold][label]:16.1%}" for fold in pooled))
    return pooled


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, default=None, help="default: results/journeys.json")
    parser.add_argument(
        "--step", type=int, default=1, help="keep every STEP-th frame (default 1: all)"
    )
    parser.add_argument(
        "--diagnose",
        action="store_true",
        help="also list, per layout, every person whose transitions differ, with the stays",
    )
    parser.add_argument(
        "--output-box",
        choices=["filtered", "detection"],
        default=None,
        help="our tracker's output_box (default: its default, the Kalman-filtered box)",
    )
    args = parser.parse_args()
    if args.step < 1:
        parser.error(f"--step must be >= 1, got {args.step}")
    if args.json is None:
        suffix = "" if args.step == 1 else f"_step{args.step}"
        if args.output_box is not None:
            suffix += f"_output_box_{args.output_box}"
        args.json = RESULTS / f"journeys{suffix}.json"
    sequence, gt = sampled("PETS09-S2L1", args.step)
    fps = sequence.fps
    print(f"PETS09-S2L1 at {fps:g} fps (every {args.step} frame(s))\n")
    config = (
        TrackerConfig() if args.output_box is None else TrackerConfig(output_box=args.output_box)
    )
    tracks: dict[str, list[Tracks]] = {"storesense": our_tracks(sequence.frames, fps, config)}
    for peer, build in PEERS.items():
        tracks[peer] = rows_to_tracks(run_tracker(build, sequence)[0], fps)
    people = {label: track_people(per_frame, gt) for label, per_frame in tracks.items()}
    results: dict[str, dict[str, dict[str, float | int]]] = {}
    diagnosis: dict[str, list[str]] = {}
    for layout_path in LAYOUTS:
        layout = load_layout(layout_path)
        name = layout_path.stem.removeprefix("journeys_")
        truth_events = journey_events(layout, gt, link=False, relink=False)
        truth = journeys_of(layout, truth_events)
        results[name] = {
            "truth": {
                "visits": truth.visits,
                "transitions": sum(n for row in truth.transitions.values() for n in row.values()),
            }
        }
        for label, per_frame in tracks.items():
            variants = [("", True, False, True), (" (raw)", False, False, True)]
            if label == "storesense":
                variants.insert(1, (" (gap link only)", True, True, True))
                variants.insert(1, (" (feet as detected)", True, False, False))
            for suffix, link, gap_only, amodal in variants:
                events = journey_events(
                    layout, per_frame, link=link, gap_only=gap_only, amodal=amodal
                )
                ours = journeys_of(layout, events)
                results[name][label + suffix] = {
                    "visits": ours.visits,
                    "transitions": sum(
                        n for row in ours.transitions.values() for n in row.values()
                    ),
                    "transition_error": round(
                        transition_error(ours.transitions, truth.transitions), 4
                    ),
                    "path_agreement": round(path_agreement(ours.paths, truth.paths), 4),
                    "person_error": round(
                        person_transition_error(layout, events, truth_events, people[label]), 4
                    ),
                }
                if args.diagnose and label + suffix == "storesense":
                    video_fps = fps * args.step
                    diagnosis[name] = diagnose(
                        layout, events, truth_events, people[label], video_fps
                    )
    for name, lines in diagnosis.items():
        print(f"{name}: our transitions against the truth's, per person")
        print("\n".join(lines) + "\n")
    header = (
        f"{'layout':<10} {'tracks':<34} {'visits':>6} {'trans':>6} {'trans err':>9} "
        f"{'path agree':>10} {'person err':>10}"
    )
    print(header)
    print("-" * len(header))
    for name, rows in results.items():
        for label, row in rows.items():
            err = f"{row['transition_error']:9.1%}" if "transition_error" in row else " " * 9
            agree = f"{row['path_agreement']:10.1%}" if "path_agreement" in row else " " * 10
            person = f"{row['person_error']:10.1%}" if "person_error" in row else ""
            print(
                f"{name:<10} {label:<34} {row['visits']:6d} {row['transitions']:6d} {err} "
                f"{agree} {person}"
            )
    labels = [label for label in next(iter(results.values())) if label != "truth"]
    folds = {
        "design": [n for n in results if n in DESIGN],
        "held out": [n for n in results if n not in DESIGN],
        "all": list(results),
    }
    pooled: dict[str, dict[str, dict[str, float]]] = {}
    for metric in ("transition_error", "person_error"):
        pooled[metric] = {}
        for fold, names in folds.items():
            true_total = sum(int(results[n]["truth"]["transitions"]) for n in names)
            if not names or true_total == 0:
                continue
            pooled[metric][fold] = {
                label: sum(
                    float(results[n][label][metric]) * int(results[n]["truth"]["transitions"])
                    for n in names
                )
                / true_total
                for label in labels
            }
    mean = {
        label: float(np.mean([rows[label]["transition_error"] for rows in results.values()]))
        for label in labels
    }
    for metric, title in (
        ("transition_error", "transition error"),
        ("person_error", "per-person transition error"),
    ):
        table = pooled[metric]
        print(f"\n{title} pooled per fold (all errors / all true transitions):")
        print(
            f"  {'tracks':<34}"
            + "".join(f"{fold + f' ({len(folds[fold])})':>16}" for fold in table)
        )
        for label in sorted(labels, key=lambda item: table["all"][item]):
            print(f"  {label:<34}" + "".join(f"{table[fold][label]:16.1%}" for fold in table))
    band = border_band(sequence.folder / "gt" / "gt.txt", FRAME_SIZE[0])[0]
    bordered = border_view(gt, tracks, band, folds)
    drift = feet_error(tracks["storesense"], gt)
    floor = noise_floor(
        gt,
        {p.stem.removeprefix("journeys_"): load_layout(p) for p in LAYOUTS},
        drift,
        tracks["storesense"],
    )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(
        json.dumps(
            {
                "layouts": results,
                "folds": folds,
                "mean_transition_error": mean,
                "pooled_transition_error": pooled["transition_error"],
                "pooled_person_error": pooled["person_error"],
                "noise_floor": floor,
                "border_band_px": band,
                "pooled_transition_error_border_dont_care": bordered,
            },
            indent=2,
        )
    )
    continuity_table(args.step)
    print(f"\nwritten {args.json}")


if __name__ == "__main__":
    main()
