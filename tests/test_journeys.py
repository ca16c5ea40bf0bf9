"""Journeys: path rules, transitions, top paths, k-anonymity, visit linking, count summary."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from storesense.api.runtime import summarise_tracks
from storesense.vision.detections import Tracks
from storesense.zones.camera import CameraAnalytics
from storesense.zones.config import LayoutError, StoreLayout, parse_layout
from storesense.zones.events import Event, EventType
from storesense.zones.journeys import (
    VisitLinker,
    ZoneStay,
    count_transitions,
    path_agreement,
    path_of,
    summarise_journeys,
    top_paths,
    transition_error,
    visit_paths,
    visit_stays,
)


def stay(
    track: int, zone: str, start: float, seconds: float, camera: str = "c", **attrs: Any
) -> list[Event]:
    return [
        Event.create(EventType.ZONE_ENTER, "s", camera, zone, track, start, dict(attrs)),
        Event.create(
            EventType.ZONE_EXIT,
            "s",
            camera,
            zone,
            track,
            start + seconds,
            {"dwell_seconds": seconds, **attrs},
        ),
    ]


@pytest.mark.parametrize(
    ("stays", "min_seconds", "expected"),
    [
        # shorter than path_min_seconds: left out
        ([("a", 0, 3), ("b", 4, 0.9), ("c", 6, 2)], 1.0, ["a", "c"]),
        ([("a", 0, 3), ("b", 4, 0.9), ("c", 6, 2)], 0.5, ["a", "b", "c"]),
        # exactly the minimum counts
        ([("a", 0, 1.0)], 1.0, ["a"]),
        # consecutive repeats collapse, also across a dropped short stay
        ([("a", 0, 2), ("a", 5, 2), ("b", 8, 0.3), ("a", 9, 3)], 1.0, ["a"]),
        # time outside every zone is ignored, however long
        ([("a", 0, 2), ("b", 600, 2)], 1.0, ["a", "b"]),
        # a return to an earlier zone after another one is a new step
        ([("a", 0, 2), ("b", 3, 2), ("a", 6, 2)], 1.0, ["a", "b", "a"]),
        # order by entry, whatever the order of the events
        ([("c", 9, 2), ("a", 0, 2), ("b", 4, 2)], 1.0, ["a", "b", "c"]),
    ],
)
def test_path_rules(
    stays: list[tuple[str, float, float]], min_seconds: float, expected: list[str]
) -> None:
    events = [e for zone, start, seconds in stays for e in stay(1, zone, start, seconds)]
    assert visit_paths(events, min_seconds).get("c:1", []) == expected


@pytest.mark.parametrize(
    ("gap_seconds", "expected"),
    [(1.0, ["a", "b"]), (0.2, ["b"])],
)
def test_stays_split_by_a_short_gap_are_one_stay(gap_seconds: float, expected: list[str]) -> None:
    # Two 0.7 s halves of one stay in "a" (a box flickering over the edge): 0.5 s apart.
    stays = [ZoneStay(0, 0.7, "a"), ZoneStay(1.2, 1.9, "a"), ZoneStay(3, 5, "b")]
    assert path_of(stays, 1.0, gap_seconds) == expected


def test_bad_path_settings_raise() -> None:
    with pytest.raises(ValueError, match="min_seconds"):
        path_of([], -1.0)
    with pytest.raises(ValueError, match="gap_seconds"):
        path_of([], 1.0, float("nan"))
    with pytest.raises(ValueError, match="max_length"):
        top_paths([["a"]], 0)
    with pytest.raises(ValueError, match="k_anonymity"):
        summarise_journeys([], k_anonymity=-1)


def test_visits_are_keyed_by_visit_id_across_tracks_and_cameras() -> None:
    events = stay(1, "a", 0, 2, visit_id="v1") + stay(9, "b", 5, 2, camera="c2", visit_id="v1")
    events += stay(2, "a", 0, 2)
    assert visit_paths(events) == {"v1": ["a", "b"], "c:2": ["a"]}


def test_a_stay_handed_over_by_the_engine_relink_joins_both_tracks() -> None:
    # Track 1 walked through "a", entered "b" and was re-linked to track 5 there: the
    # engine dates 5's exit of "b" from 1's entry (dwell from 10.0).
    events = stay(1, "a", 0, 5)
    events.append(Event.create(EventType.ZONE_ENTER, "s", "c", "b", 1, 10.0))
    events.append(
        Event.create(EventType.ZONE_EXIT, "s", "c", "b", 5, 14.123, {"dwell_seconds": 4.123})
    )
    events += stay(5, "c", 20, 3)
    # An unrelated track entering "b" at another time is not joined.
    events += stay(7, "b", 30, 2)
    assert visit_paths(events) == {"c:1": ["a", "b", "c"], "c:7": ["b"]}
    assert [s.zone for s in visit_stays(events)["c:1"]] == ["a", "b", "c"]


def test_transitions_and_top_paths() -> None:
    paths = [["a", "b", "c"], ["a", "b"], ["a", "c"], ["b"]]
    assert count_transitions(paths) == {"a": {"b": 2, "c": 1}, "b": {"c": 1}}
    assert top_paths(paths, 2) == [(("a", "b"), 2), (("a", "c"), 1), (("b",), 1)]
    assert top_paths(paths, 6, limit=2) == [(("a", "b"), 1), (("a", "b", "c"), 1)]


def test_k_anonymity_folds_rare_paths_into_other_and_drops_rare_transitions() -> None:
    events: list[Event] = []
    track = 0
    for zones, visits in ((("a", "b"), 3), (("a", "c"), 1), (("b", "c"), 2)):
        for _ in range(visits):
            track += 1
            for i, zone in enumerate(zones):
                events += stay(track, zone, 10 * i, 2)
    open_ = summarise_journeys(events)
    assert open_.visits == 6 and open_.other_visits == 0
    assert open_.transitions == {"a": {"b": 3, "c": 1}, "b": {"c": 2}}
    folded = summarise_journeys(events, k_anonymity=2)
    assert folded.visits == 6
    assert folded.paths == [(("a", "b"), 3), (("b", "c"), 2)]
    assert folded.other_visits == 1
    assert folded.transitions == {"a": {"b": 3}, "b": {"c": 2}}
    strict = summarise_journeys(events, k_anonymity=4)
    assert strict.paths == [] and strict.other_visits == 6 and strict.transitions == {}


def test_scores() -> None:
    truth = {"a": {"b": 10, "c": 5}}
    assert transition_error(truth, truth) == 0.0
    assert transition_error({"a": {"b": 8}, "c": {"a": 1}}, truth) == pytest.approx(8 / 15)
    assert transition_error({}, {}) == 0.0
    assert path_agreement([(("a",), 2)], [(("a",), 2)]) == 1.0
    assert path_agreement([(("a",), 2)], [(("b",), 2)]) == 0.0


def person(track_id: int, x: float, t: float, y: float = 300.0, h: float = 100.0) -> Tracks:
    return Tracks(
        np.array([[x - 20, y - h, x + 20, y]]),
        np.ones(1),
        np.array([track_id]),
        np.zeros((1, 2)),
        timestamp=t,
    )


def walk(linker: VisitLinker, track_id: int, xs: list[float], t0: float) -> float:
    t = t0
    for x in xs:
        linker.update(person(track_id, x, t))
        t += 0.5
    return t


def test_linker_continues_a_track_lost_for_a_few_seconds_where_it_was_heading() -> None:
    linker = VisitLinker("c", link_seconds=4.0, link_distance=1.0, frame_size=(768, 576))
    t = walk(linker, 1, [100, 120, 140, 160], 0.0)  # 40 px/s to the right
    # Lost for 3 s: it walked on about 120 px; the new id appears there.
    walk(linker, 2, [285, 305], t + 3.0)
    assert linker.visit_of(2) == linker.visit_of(1) == "c:1"
    # A new id far from any ended track is a new visit.
    walk(linker, 3, [700], t + 3.5)
    assert linker.visit_of(3) == "c:3"
    assert linker.links == 1


@pytest.mark.parametrize(
    ("gap", "x", "why"),
    [
        (5.0, 360, "longer gap than link_seconds (hidden hand-over off)"),
        (1.0, 500, "too far from where it was heading"),
    ],
)
def test_linker_does_not_join_beyond_its_limits(gap: float, x: float, why: str) -> None:
    linker = VisitLinker(
        "c", link_seconds=4.0, link_distance=1.0, frame_size=(768, 576), hidden_seconds=0
    )
    t = walk(linker, 1, [100, 120, 140, 160], 0.0)
    walk(linker, 2, [x], t - 0.5 + gap)
    assert linker.visit_of(2) == "c:2", why


def test_linker_continues_a_person_hidden_for_longer_when_nothing_competes() -> None:
    linker = VisitLinker("c", frame_size=(768, 576))
    t = walk(linker, 1, [300, 300, 300, 300], 0.0)  # standing at x = 300
    walk(linker, 9, [600, 600], 0.0)  # someone else, far away, still there
    # Hidden for 10 s (longer than link_seconds), back 40 px from where they stood.
    walk(linker, 2, [340, 340], t + 10.0)
    assert linker.visit_of(2) == "c:1"
    # The same with the hidden hand-over off: a new visit.
    off = VisitLinker("c", frame_size=(768, 576), hidden_seconds=0)
    t = walk(off, 1, [300, 300, 300, 300], 0.0)
    walk(off, 2, [340, 340], t + 10.0)
    assert off.visit_of(2) == "c:2"


def test_hidden_hand_over_only_when_nothing_competes() -> None:
    # Two people stand 60 px apart and are both hidden; one new id comes back between
    # where they were: either could be it, so it starts a new visit.
    linker = VisitLinker("c", frame_size=(768, 576))
    walk(linker, 1, [300, 300, 300], 0.0)
    t = walk(linker, 2, [360, 360, 360], 0.0)
    walk(linker, 3, [330, 330], t + 8.0)
    assert linker.visit_of(3) == "c:3"
    # Beyond hidden_seconds: a new visit too.
    late = VisitLinker("c", frame_size=(768, 576), hidden_seconds=6.0)
    t = walk(late, 1, [300, 300, 300], 0.0)
    walk(late, 2, [320, 320], t + 8.0)
    assert late.visit_of(2) == "c:2"


def test_hidden_hand_over_not_for_someone_walking_in_at_the_border() -> None:
    linker = VisitLinker("c", frame_size=(768, 576))
    t = walk(linker, 1, [45, 45, 45], 0.0)  # box 25..65: inside the picture
    walk(linker, 2, [30, 30], t + 8.0)  # box 10..50 touches the left border
    assert linker.visit_of(2) == "c:2"


def overlap_frames() -> list[Tracks]:
    """Id 1 walks right at 40 px/s; id 2 is born 20 px ahead of where it is heading while
    id 1 is still seen (at t = 3.0), then id 1 is never seen again."""
    frames = [person(1, 100 + 20 * step, step * 0.5) for step in range(6)]
    frames.append(
        Tracks(
            np.array([[200, 200, 240, 300], [180, 200, 220, 300]]),
            np.ones(2),
            np.array([2, 1]),
            np.zeros((2, 2)),
            timestamp=3.0,
        )
    )
    frames += [person(2, 220 + 20 * step, 3.0 + 0.5 * step) for step in range(1, 8)]
    return frames


def test_overlap_hand_over_joins_the_events_of_the_young_track() -> None:
    """The tracker starts id 2 on a person just before it drops their old id 1 (whose box
    drifted onto a neighbour): once 1 has been gone for overlap_seconds, 2 continues its
    visit, and 2's earlier events join it through ``visit_joins``."""
    linker = VisitLinker("c", frame_size=(768, 576))
    early: list[Event] = []
    for frame in overlap_frames():
        linker.update(frame)
        if frame.timestamp == 3.0:
            early = linker.stamp(stay(2, "b", 3.0, 0.0)[:1])  # id 2 enters "b" now
            assert linker.visit_of(2) == "c:2"
    assert linker.visit_of(2) == "c:1" and linker.links == 1
    dwell = {"dwell_seconds": 3.5}
    late = linker.stamp([Event.create(EventType.ZONE_EXIT, "s", "c", "b", 2, 6.5, dwell)])
    assert early[0].attributes["visit_id"] == "c:2"
    assert late[0].attributes == {**dwell, "visit_id": "c:1", "visit_joins": "c:2"}
    events = stay(1, "a", 0.0, 2.5, visit_id="c:1") + early + late
    # Someone else entering "b" at the same instant is not joined to the visit.
    events += stay(5, "b", 3.0, 3.0, visit_id="c:5")
    assert visit_paths(events) == {"c:1": ["a", "b"], "c:5": ["b"]}
    # With the overlap hand-over off, id 2 stays a visit of its own.
    off = VisitLinker("c", frame_size=(768, 576), overlap_seconds=0)
    for frame in overlap_frames():
        off.update(frame)
    assert off.visit_of(2) == "c:2" and off.links == 0


def test_overlap_hand_over_not_between_people_walking_past_each_other() -> None:
    # Id 1 walks right at 40 px/s; id 2 is born just ahead of it walking LEFT at 40 px/s,
    # and id 1 vanishes: two people passing, not one person's new id.
    linker = VisitLinker("c", frame_size=(768, 576))
    for step in range(6):
        linker.update(person(1, 100 + 20 * step, step * 0.5))
    boxes = np.array([[240, 200, 280, 300], [200, 200, 240, 300]])
    linker.update(Tracks(boxes, np.ones(2), np.array([2, 1]), np.zeros((2, 2)), timestamp=3.0))
    for step in range(1, 8):  # at 3.5, id 2 is just where id 1 was heading (x = 240)
        linker.update(person(2, 260 - 20 * step, 3.0 + 0.5 * step))
    assert linker.visit_of(2) == "c:2" and linker.links == 0


@pytest.mark.parametrize(("x", "continued"), [(700, False), (520, True)])
def test_linker_carries_a_jumping_box_on_at_running_speed_at_most(
    x: float, continued: bool
) -> None:
    # The box jumps 200 px in 0.5 s (4 box heights/s: onto someone else), then is lost
    # for 1 s: the linker expects it at most 2 box heights/s further on (x = 500), not at
    # x = 700 where 400 px/s would put it.
    linker = VisitLinker("c", frame_size=(768, 576))
    linker.update(person(1, 100, 0.0))
    linker.update(person(1, 300, 0.5))
    walk(linker, 2, [x], 1.5)
    assert (linker.visit_of(2) == "c:1") is continued


def test_linker_does_not_continue_a_track_that_left_through_the_border() -> None:
    linker = VisitLinker("c", link_seconds=4.0, link_distance=1.0, frame_size=(768, 576))
    t = walk(linker, 1, [700, 730, 750], 0.0)  # the box touches the right border
    walk(linker, 2, [750], t + 1.0)  # someone else walks in there
    assert linker.visit_of(2) == "c:2"


def test_linker_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="link_seconds"):
        VisitLinker("c", link_seconds=-1)
    with pytest.raises(ValueError, match="hidden_seconds"):
        VisitLinker("c", hidden_seconds=float("inf"))
    with pytest.raises(ValueError, match="overlap_seconds"):
        VisitLinker("c", overlap_seconds=-0.5)


def layout_data() -> dict[str, Any]:
    return {
        "store": {"id": "s", "journeys": {"link_seconds": 3.0}},
        "cameras": [{"id": "c"}],
        "zones": [
            {"id": "left", "camera": "c", "polygon": [[0, 0], [200, 0], [200, 600], [0, 600]]},
            {"id": "right", "camera": "c", "polygon": [[400, 0], [768, 0], [768, 600], [400, 600]]},
        ],
    }


def test_count_summary_has_the_journeys_of_a_fragmented_walk() -> None:
    """A person walks left → right; the tracker loses them for 2 s in the corridor and
    gives a new id: the journey still has one visit with the transition left → right."""
    layout = StoreLayout.model_validate(layout_data())
    frames = [person(1, 50 + 20 * i, i * 0.5) for i in range(12)]  # x 50 → 270
    frames += [Tracks.empty(6.0 + 0.5 * i) for i in range(4)]  # lost for 2 s
    frames += [person(2, 350 + 20 * i, 8.0 + 0.5 * i) for i in range(12)]  # x 350 → 570
    summary = summarise_tracks(layout, "c", frames).to_dict()
    assert summary["journeys"] == {
        "visits": 1,
        "transitions": {"left": {"right": 1}},
        "paths": [{"path": ["left", "right"], "visits": 1}],
    }
    # With journey linking off, the zone events chained per track give two visits.
    data = layout_data()
    data["store"]["journeys"]["link_seconds"] = 0
    raw = summarise_tracks(StoreLayout.model_validate(data), "c", frames).to_dict()
    assert raw["journeys"]["visits"] == 2 and raw["journeys"]["transitions"] == {}


def test_camera_events_carry_the_visit_id() -> None:
    layout = StoreLayout.model_validate(layout_data())
    analytics = CameraAnalytics(layout, "c", shelves=False)
    events = analytics.update(None, person(4, 100, 0.0)) + analytics.finish(1.0)
    assert [e.attributes["visit_id"] for e in events] == ["c:4", "c:4"]


@pytest.mark.parametrize(
    ("journeys", "message"),
    [
        ({"path_min_seconds": -1}, "store.journeys.path_min_seconds"),
        ({"link_seconds": "inf"}, "store.journeys.link_seconds: must be a finite number"),
        ({"link_hidden_seconds": -1}, "store.journeys.link_hidden_seconds"),
        ({"link_overlap_seconds": "nan"}, "store.journeys.link_overlap_seconds"),
        ({"k_anonymity": -2}, "store.journeys.k_anonymity"),
        ({"funnels": [{"id": "f", "steps": ["nowhere"]}]}, "unknown zone 'nowhere'"),
        ({"funnels": [{"id": "f", "steps": ["kind:attic"]}]}, "unknown zone kind 'kind:attic'"),
        (
            {"funnels": [{"id": "f", "steps": ["left"]}, {"id": "f", "steps": ["right"]}]},
            "duplicate id 'f'",
        ),
        ({"funnels": [{"id": "f", "steps": []}]}, "store.journeys.funnels[0].steps"),
    ],
)
def test_bad_journey_settings_are_reported_with_their_path(
    journeys: dict[str, Any], message: str
) -> None:
    data = layout_data()
    data["store"]["journeys"] = journeys
    with pytest.raises(LayoutError, match=None) as error:
        parse_layout(data)
    assert message in str(error.value)


def test_display_zone_kind_and_funnels_load() -> None:
    data = layout_data()
    data["zones"][0]["kind"] = "display"
    data["store"]["journeys"] = {
        "exposure_seconds": 3,
        "funnels": [{"id": "f", "steps": ["left", "kind:area"], "within_seconds": 60}],
    }
    layout = parse_layout(data)
    assert layout.zone("left").kind.value == "display"
    assert layout.store.journeys.funnels[0].steps == ["left", "kind:area"]
    assert layout.store.journeys.path_min_seconds == 1.0
