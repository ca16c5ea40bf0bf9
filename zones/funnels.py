"""The store funnel, custom zone funnels and display exposure/attribution, from events.

Pure functions over :class:`~storesense.zones.events.Event` lists, on the visits of
:mod:`storesense.zones.journeys` (staff tracks left out, as in the store metrics).

* **store funnel** stages, each a set of visits inside the previous one (they nest by
  construction): ``entered`` (visits that crossed an entrance line inward, else entered
  an ``entrance`` zone; a layout without either: every visit) → ``engaged`` (entered
  visits that stayed ``engaged_seconds`` in one product zone, kind ``area``, ``shelf``
  or ``display``, or touched a shelf) → ``interacted`` (engaged visits with a shelf
  interaction); before them ``passersby`` (visits entering a ``passerby`` zone, and
  every entered visit; 0 when the layout has no ``passerby`` zone) and after them
  ``purchased`` (transactions, only when supplied: a till count, not visits). Each
  stage's rate is its count over the previous stage's; bounce = 1 - engaged / entered.
* **custom funnel**: an ordered list of zone ids or ``kind:KIND``; a visit reaches
  step *i* when it entered steps 1..*i* in that order, step *i* at most
  ``within_seconds`` after step 1 (stays of at least ``path_min_seconds``).
* **display exposure**: a visit that stayed ``exposure_seconds`` in a ``display``
  zone; **attribution**: the share of exposed visits that reached a target within
  ``attribution_seconds`` after the exposure began, beside the share of visits
  never exposed to that display that reached it; **uplift** = the difference.
  Observational, not causal: exposed visitors may differ from the others.

Example:
    >>> from storesense.zones.journeys import ZoneStay
    >>> funnel_reach({"v1": [ZoneStay(0, 5, "door"), ZoneStay(20, 30, "till")],
    ...               "v2": [ZoneStay(0, 5, "door")]}, ["door", "till"], within_seconds=60)
    [2, 1]
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from storesense.zones.config import JourneySettings, StoreLayout, ZoneKind
from storesense.zones.events import Event, EventType
from storesense.zones.journeys import ZoneStay, merge_stays, visit_key, visit_stays
from storesense.zones.metrics import bucket_edges, staff_tracks

Stage = Literal["passersby", "entered", "engaged", "interacted", "purchased"]
PRODUCT_KINDS = frozenset({ZoneKind.AREA, ZoneKind.SHELF, ZoneKind.DISPLAY})
INTERACTION_EVENTS = frozenset(
    {EventType.SHELF_INTERACTION, EventType.ITEM_TAKEN, EventType.ITEM_RETURNED}
)


@dataclass(frozen=True)
class StageCount:
    stage: str
    count: int
    rate: float | None
    """count / the previous stage's count (None for the first or after a 0)."""


def with_rates(counts: Sequence[tuple[str, int]]) -> list[StageCount]:
    """Stage counts with each one's rate of the previous.

    >>> [(s.stage, s.rate) for s in with_rates([("a", 10), ("b", 4), ("c", 0), ("d", 0)])]
    [('a', None), ('b', 0.4), ('c', 0.0), ('d', None)]
    """
    out: list[StageCount] = []
    previous: int | None = None
    for stage, count in counts:
        rate = None if not previous else round(count / previous, 4)
        out.append(StageCount(stage, count, rate))
        previous = count
    return out


@dataclass(frozen=True)
class StoreFunnel:
    start: float
    end: float
    stages: list[StageCount]
    bounce_rate: float | None
    """1 - engaged / entered (None without footfall), at least 0."""


def customer_events(events: Iterable[Event], layout: StoreLayout) -> list[Event]:
    """Events in time order, staff tracks (``staff_only`` zones) left out."""
    ordered = sorted(events, key=lambda e: e.timestamp)
    staff = staff_tracks(ordered, layout)
    return [e for e in ordered if (e.camera_id, e.track_id) not in staff]


def store_funnel(
    events: Sequence[Event],
    layout: StoreLayout,
    start: float,
    end: float,
    transactions: Mapping[float, int] | None = None,
) -> StoreFunnel:
    """The store funnel over ``[start, end)`` of customer events (see the module)."""
    if end <= start:
        raise ValueError(f"end ({end}) must be after start ({start})")
    settings = layout.store.journeys
    kinds = {zone.id: zone.kind for zone in layout.zones}
    entrance_lines = {line.id for line in layout.lines if line.entrance}
    in_range = [e for e in events if start <= e.timestamp < end]
    # Each stage is a set of visits inside the previous stage's: the stages nest.
    has_entrance = bool(entrance_lines) or ZoneKind.ENTRANCE in kinds.values()
    if entrance_lines:
        entered = {
            visit_key(e)
            for e in in_range
            if e.type == EventType.LINE_CROSS
            and e.target in entrance_lines
            and e.attributes.get("direction") == "in"
        }
    elif has_entrance:
        entered = {
            visit_key(e)
            for e in in_range
            if e.type == EventType.ZONE_ENTER and kinds.get(e.target) == ZoneKind.ENTRANCE
        }
    else:  # every camera is inside the store
        entered = {visit_key(e) for e in in_range}
    passersby: set[str] = set()
    if ZoneKind.PASSERBY in kinds.values():
        passersby = entered | {
            visit_key(e)
            for e in in_range
            if e.type == EventType.ZONE_ENTER and kinds.get(e.target) == ZoneKind.PASSERBY
        }
    interacting = {visit_key(e) for e in in_range if e.type in INTERACTION_EVENTS}
    engaged = entered & (
        interacting
        | {
            key
            for key, stays in visit_stays(in_range).items()
            if any(
                kinds.get(s.zone) in PRODUCT_KINDS and s.seconds >= settings.engaged_seconds
                for s in merge_stays(stays, settings.path_gap_seconds)
            )
        }
    )
    interacted = engaged & interacting
    counts: list[tuple[str, int]] = [
        ("passersby", len(passersby)),
        ("entered", len(entered)),
        ("engaged", len(engaged)),
        ("interacted", len(interacted)),
    ]
    if transactions is not None:
        counts.append(("purchased", sum(n for t, n in transactions.items() if start <= t < end)))
    bounce = None if not entered else round(1 - len(engaged) / len(entered), 4)
    return StoreFunnel(start, end, with_rates(counts), bounce)


def store_funnel_buckets(
    events: Iterable[Event],
    layout: StoreLayout,
    start: datetime,
    end: datetime,
    bucket: timedelta | None = None,
    transactions: Mapping[float, int] | None = None,
) -> tuple[StoreFunnel, list[StoreFunnel]]:
    """The funnel over ``[start, end)`` and, with ``bucket``, one per bucket aligned in
    the store's time zone."""
    customers = customer_events(events, layout)
    whole = store_funnel(customers, layout, start.timestamp(), end.timestamp(), transactions)
    if bucket is None:
        return whole, []
    return whole, [
        store_funnel(customers, layout, b0.timestamp(), b1.timestamp(), transactions)
        for b0, b1 in bucket_edges(start, end, bucket, layout.store.tz)
    ]


def _matches(step: str, zone: str, kinds: Mapping[str, ZoneKind]) -> bool:
    if step.startswith("kind:"):
        return str(kinds.get(zone, "")) == step.removeprefix("kind:")
    return zone == step


def funnel_reach(
    stays_by_visit: Mapping[str, Sequence[ZoneStay]],
    steps: Sequence[str],
    *,
    within_seconds: float,
    kinds: Mapping[str, ZoneKind] | None = None,
    min_seconds: float = 0.0,
) -> list[int]:
    """Per step, how many visits reached it in order (see the module docstring)."""
    if not steps:
        raise ValueError("a funnel needs at least one step")
    if not within_seconds > 0:
        raise ValueError(f"within_seconds must be > 0, got {within_seconds}")
    kinds = kinds or {}
    reached = [0] * len(steps)
    for stays in stays_by_visit.values():
        ordered = [s for s in sorted(stays) if s.seconds >= min_seconds]
        best = 0
        for first_index, first in enumerate(ordered):
            if not _matches(steps[0], first.zone, kinds):
                continue
            deadline = first.entered + within_seconds
            depth, cursor = 1, first_index
            for step in steps[1:]:
                cursor = next(
                    (
                        i
                        for i in range(cursor + 1, len(ordered))
                        if ordered[i].entered <= deadline and _matches(step, ordered[i].zone, kinds)
                    ),
                    -1,
                )
                if cursor < 0:
                    break
                depth += 1
            best = max(best, depth)
            if best == len(steps):
                break
        for i in range(best):
            reached[i] += 1
    return reached


def custom_funnel(
    events: Iterable[Event],
    layout: StoreLayout,
    steps: Sequence[str],
    within_seconds: float,
) -> list[StageCount]:
    """Visits reaching each step of a custom funnel, with rates (stays ending in the
    events' range; staff left out)."""
    settings: JourneySettings = layout.store.journeys
    stays = {
        key: merge_stays(visit, settings.path_gap_seconds)
        for key, visit in visit_stays(customer_events(events, layout)).items()
    }
    reached = funnel_reach(
        stays,
        steps,
        within_seconds=within_seconds,
        kinds={z.id: z.kind for z in layout.zones},
        min_seconds=settings.path_min_seconds,
    )
    return with_rates(list(zip(steps, reached, strict=True)))


# ------------------------------------------------------------------ displays
@dataclass(frozen=True)
class DisplayAttribution:
    display: str
    exposures: int
    """Visits that stayed ``exposure_seconds`` in the display zone."""
    mean_dwell_seconds: float | None
    """Mean time in front of the display of the exposed visits."""
    exposed_reached: int
    exposed_rate: float | None
    """Share of exposed visits that reached the target within the window after exposure."""
    unexposed_visits: int
    unexposed_reached: int
    unexposed_rate: float | None
    """Share of the other visits (never exposed to this display) that reached the target."""
    uplift: float | None
    """exposed_rate - unexposed_rate: observational, not causal."""


def _target_times(
    events: Sequence[Event], target: str, kinds: Mapping[str, ZoneKind]
) -> dict[str, list[float]]:
    """When each visit reached the target: a zone id, ``kind:KIND`` or ``interaction``."""
    times: dict[str, list[float]] = {}
    for event in events:
        if target == "interaction":
            hit = event.type in INTERACTION_EVENTS
        else:
            hit = event.type == EventType.ZONE_ENTER and _matches(target, event.target, kinds)
        if hit:
            times.setdefault(visit_key(event), []).append(event.timestamp)
    return times


def display_attribution(
    events: Iterable[Event], layout: StoreLayout, target: str
) -> list[DisplayAttribution]:
    """Exposures, mean dwell and attribution to ``target`` of every ``display`` zone."""
    settings = layout.store.journeys
    kinds = {z.id: z.kind for z in layout.zones}
    if target != "interaction" and not target.startswith("kind:") and target not in kinds:
        raise ValueError(f"unknown target {target!r}: a zone id, kind:KIND or interaction")
    if target.startswith("kind:") and target.removeprefix("kind:") not in set(ZoneKind):
        raise ValueError(f"unknown zone kind in target {target!r}")
    customers = customer_events(events, layout)
    stays = {
        key: merge_stays(visit, settings.path_gap_seconds)
        for key, visit in visit_stays(customers).items()
    }
    visits = set(stays) | {visit_key(e) for e in customers}
    reached = _target_times(customers, target, kinds)
    out = []
    for display in (z.id for z in layout.zones if z.kind == ZoneKind.DISPLAY):
        exposed: dict[str, ZoneStay] = {}
        for key, visit in stays.items():
            first = next(
                (s for s in visit if s.zone == display and s.seconds >= settings.exposure_seconds),
                None,
            )
            if first is not None:
                exposed[key] = first
        hits = sum(
            any(
                s.entered <= t <= s.entered + settings.attribution_seconds
                for t in reached.get(key, ())
            )
            for key, s in exposed.items()
        )
        others = visits - set(exposed)
        other_hits = sum(bool(reached.get(key)) for key in others)
        exposed_rate = round(hits / len(exposed), 4) if exposed else None
        other_rate = round(other_hits / len(others), 4) if others else None
        dwell = [s.seconds for s in exposed.values()]
        out.append(
            DisplayAttribution(
                display=display,
                exposures=len(exposed),
                mean_dwell_seconds=round(sum(dwell) / len(dwell), 3) if dwell else None,
                exposed_reached=hits,
                exposed_rate=exposed_rate,
                unexposed_visits=len(others),
                unexposed_reached=other_hits,
                unexposed_rate=other_rate,
                uplift=(
                    round(exposed_rate - other_rate, 4)
                    if exposed_rate is not None and other_rate is not None
                    else None
                ),
            )
        )
    return out
