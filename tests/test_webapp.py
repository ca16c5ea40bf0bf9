"""The web app (dashboard ``/`` and zone editor ``/setup``) in a real headless Chromium,
against a real service whose camera worker runs the real detector on the PETS09 video.

Screenshots of both pages at 1400x1000 go to ``docs/images/`` (``STORESENSE_SCREENSHOTS``
overrides the folder).
"""

from __future__ import annotations

import math
import os
import random
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from playwright.sync_api import Browser, Page, expect
from service_helpers import LiveServer, cut_clip, wait_for
from storesense.api.app import create_app
from storesense.api.auth import new_key
from storesense.api.runtime import WorkerSupervisor, pipeline_factory_for
from storesense.api.settings import ServiceSettings
from storesense.api.store import open_store
from storesense.api.store.base import Store
from storesense.zones.config import StoreLayout
from storesense.zones.events import Event, EventType

VIEWPORT = {"width": 1400, "height": 1000}
SCREENSHOTS = Path(
    os.environ.get("STORESENSE_SCREENSHOTS", Path(__file__).parent.parent / "docs" / "images")
)
PETS_SIZE = (768, 576)

pytest_plugins = ["service_helpers"]


@dataclass
class Service:
    url: str
    store: Store
    layout: dict[str, Any]
    keys: dict[str, str]

    @property
    def store_id(self) -> str:
        return self.store.store_id

    def api(self, scope: str = "admin") -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"X-API-Key": self.keys[scope]}, timeout=30)

    def page(self, browser: Browser, path: str, scope: str = "admin") -> Page:
        page = browser.new_page(viewport=VIEWPORT)
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.errors = errors  # type: ignore[attr-defined]
        page.goto(f"{self.url}{path}#key={self.keys[scope]}")
        return page


def add_keys(store: Store) -> dict[str, str]:
    keys = {}
    for scope in ("display", "analyst", "admin"):
        key, record = new_key(f"{scope} test key", [scope])
        store.put_api_key(record)
        keys[scope] = key
    return keys


# ============================================================ setup: the zone editor
def editor_layout(store_id: str, pets09: Path) -> dict[str, Any]:
    source = str(pets09 / "PETS09-S2L1.avi")
    return {
        "store": {"id": store_id, "timezone": "UTC"},
        "cameras": [{"id": "plaza", "source": source, "fps": 7}, {"id": "push-cam"}],
        "zones": [
            {
                "id": "left",
                "camera": "plaza",
                "polygon": [[0, 300], [300, 300], [300, 576], [0, 576]],
            }
        ],
        "lines": [
            {
                "id": "door",
                "camera": "plaza",
                "points": [[384, 0], [384, 576]],
                "inside": [600, 300],
            }
        ],
    }


@pytest.fixture(scope="module")
def editor(
    tmp_path_factory: pytest.TempPathFactory, pets09: Path, detector: Any
) -> Iterator[Service]:
    folder = tmp_path_factory.mktemp("editor")
    store = open_store(f"sqlite:///{folder / 'editor.db'}", f"ed{uuid.uuid4().hex[:6]}")
    layout_data = editor_layout(store.store_id, pets09)
    layout = StoreLayout.model_validate(layout_data)
    settings = ServiceSettings(
        store_url="sqlite:///unused.db", occupancy_refresh_s=0.05, loop_sources=True
    )
    supervisor = WorkerSupervisor(
        layout, store, settings, pipeline_factory=pipeline_factory_for(detector)
    )
    keys = add_keys(store)
    with LiveServer(create_app(settings, store, layout, supervisor=supervisor)) as server:
        yield Service(server.url, store, layout_data, keys)
    store.close()


@pytest.fixture()
def setup_page(editor: Service, browser: Browser) -> Iterator[Page]:
    """``/setup`` with the editor's original layout and the camera's pixelated frame shown."""
    with editor.api() as api:
        assert api.put("/v1/layout", json=editor.layout).status_code == 200
        api.put("/v1/cameras/plaza/debug", json={"snapshots": False})
    page = editor.page(browser, "/setup")
    expect(page.get_by_test_id("camera-select").locator("option")).to_have_count(2)
    expect(page.get_by_test_id("camera-select")).to_have_value("plaza")
    page.get_by_test_id("enable-snapshots").click()  # off by default: the operator turns it on
    expect(page.get_by_test_id("camera-view").locator("img")).to_be_visible(timeout=20_000)
    yield page
    assert not page.errors, page.errors  # type: ignore[attr-defined]
    page.close()


def view_geometry(page: Page) -> tuple[dict[str, float], float]:
    """The camera view's box on the page and its scale (screen px per image px)."""
    view = page.get_by_test_id("camera-view")
    box = view.bounding_box()
    assert box is not None
    natural = page.evaluate(
        "() => { const i = document.querySelector('[data-testid=camera-view] img');"
        " return [i.naturalWidth, i.naturalHeight]; }"
    )
    assert tuple(natural) == PETS_SIZE
    return box, box["width"] / natural[0]


def click_image(page: Page, points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Click screen offsets inside the view; return where they are in image pixels."""
    box, scale = view_geometry(page)
    for x, y in points:
        page.mouse.click(box["x"] + x, box["y"] + y)
    return [(x / scale, y / scale) for x, y in points]


def saved_layout(service: Service) -> dict[str, Any]:
    with service.api() as api:
        response = api.get("/v1/layout")
        assert response.status_code == 200
        return dict(response.json())


def save(page: Page) -> None:
    page.get_by_test_id("save-layout").click()
    expect(page.locator("#message")).to_contain_text("Saved")


def assert_close(got: list[list[float]], expected: list[tuple[float, float]]) -> None:
    assert len(got) == len(expected), got
    for (gx, gy), (ex, ey) in zip(got, expected, strict=True):
        assert math.hypot(gx - ex, gy - ey) <= 2.0, (got, expected)


def test_camera_view_is_exactly_the_pixelated_frame(setup_page: Page) -> None:
    box, scale = view_geometry(setup_page)
    image_box = setup_page.get_by_test_id("camera-view").locator("img").bounding_box()
    assert image_box is not None
    for side in ("x", "y", "width", "height"):
        assert abs(image_box[side] - box[side]) < 0.5, (side, image_box, box)
    assert abs(box["height"] - PETS_SIZE[1] * scale) < 1.0  # no letterbox: same aspect
    overlay = setup_page.get_by_test_id("camera-view").locator("[data-shape-id]")
    expect(overlay).to_have_count(2)  # the zone and the line of the layout


def test_draw_a_zone_with_four_clicks_and_save_it_in_image_pixels(
    setup_page: Page, editor: Service
) -> None:
    setup_page.get_by_test_id("draw-zone").click()
    clicked = click_image(setup_page, [(420, 80), (700, 95), (690, 330), (430, 300)])
    setup_page.get_by_test_id("shape-id").fill("till")
    setup_page.get_by_test_id("finish-shape").click()
    setup_page.get_by_role("combobox").nth(1).select_option("queue")  # the zone's kind
    save(setup_page)
    zones = {zone["id"]: zone for zone in saved_layout(editor)["zones"]}
    assert zones["till"]["kind"] == "queue"
    assert_close(zones["till"]["polygon"], clicked)
    with editor.api("display") as api:  # applied live: the new zone is counted
        assert "till" in api.get("/v1/occupancy").json()["zones"]
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    setup_page.screenshot(path=str(SCREENSHOTS / "setup.jpg"), quality=85)


def assert_error_beside(page: Page, shape_id: str, message: str) -> None:
    """The server's ``message`` is shown on the picture, beside the shape ``shape_id``."""
    on_shape = page.get_by_test_id("shape-error")
    expect(on_shape).to_contain_text(message)
    label = on_shape.bounding_box()
    shape = page.locator(f'[data-shape-id="{shape_id}"]').bounding_box()
    assert label is not None and shape is not None
    assert abs(label["x"] - shape["x"]) < 40 and abs(label["y"] - shape["y"]) < 60


def test_a_self_intersecting_zone_shows_the_servers_message_and_saves_nothing(
    setup_page: Page, editor: Service
) -> None:
    setup_page.get_by_test_id("draw-zone").click()
    click_image(setup_page, [(450, 80), (700, 300), (700, 80), (450, 300)])  # a bow tie
    setup_page.get_by_test_id("shape-id").fill("bowtie")
    setup_page.get_by_test_id("finish-shape").click()
    setup_page.get_by_test_id("save-layout").click()
    errors = setup_page.get_by_test_id("layout-errors")
    expect(errors).to_contain_text("zones[1].polygon: self-intersecting")
    assert_error_beside(setup_page, "bowtie", "self-intersecting")
    expect(setup_page.locator('#shapes li[data-shape-index="1"] .error')).to_contain_text(
        "self-intersecting"
    )
    assert [zone["id"] for zone in saved_layout(editor)["zones"]] == ["left"]
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    setup_page.screenshot(path=str(SCREENSHOTS / "setup-errors.jpg"), quality=85)


def test_a_line_gets_its_in_side_from_the_third_click(setup_page: Page, editor: Service) -> None:
    setup_page.get_by_test_id("draw-line").click()
    setup_page.get_by_test_id("shape-id").fill("entrance")
    ends_and_inside = click_image(setup_page, [(100, 100), (100, 400), (40, 250)])
    setup_page.get_by_test_id("line-entrance").check()
    setup_page.get_by_label("Min side s").fill("0.8")
    setup_page.get_by_label("Min side s").dispatch_event("change")
    depth = setup_page.get_by_test_id("line-depth")
    expect(depth).to_have_attribute("placeholder", "default")  # unset: the model's default
    depth.fill("1.5")  # more than the box height: the server says why, nothing is saved
    depth.dispatch_event("change")
    setup_page.get_by_test_id("save-layout").click()
    expect(setup_page.get_by_test_id("layout-errors")).to_contain_text("depth")
    expect(setup_page.locator("#message")).to_contain_text("Not saved")
    assert "entrance" not in {line["id"] for line in saved_layout(editor)["lines"]}
    setup_page.get_by_test_id("line-depth").fill("0.1")
    setup_page.get_by_test_id("line-depth").dispatch_event("change")
    save(setup_page)
    lines = {line["id"]: line for line in saved_layout(editor)["lines"]}
    assert lines["entrance"]["entrance"] is True
    assert lines["entrance"]["min_side_seconds"] == 0.8
    assert lines["entrance"]["depth"] == 0.1
    assert_close(lines["entrance"]["points"], ends_and_inside[:2])
    assert_close([lines["entrance"]["inside"]], ends_and_inside[2:])
    setup_page.get_by_test_id("flip-in-side").click()
    save(setup_page)
    flipped = {line["id"]: line for line in saved_layout(editor)["lines"]}["entrance"]
    (ax, _), _ = flipped["points"]
    assert flipped["inside"][0] > ax  # now on the other (right) side of the vertical line


def test_a_mask_is_saved_on_its_camera(setup_page: Page, editor: Service) -> None:
    setup_page.get_by_test_id("draw-mask").click()
    clicked = click_image(setup_page, [(20, 20), (120, 20), (120, 90), (20, 90)])
    setup_page.get_by_test_id("finish-shape").click()
    save(setup_page)
    camera = saved_layout(editor)["cameras"][0]
    assert camera["id"] == "plaza"
    assert len(camera["masks"]) == 1
    assert_close(camera["masks"][0], clicked)


def test_an_occluder_is_drawn_moved_and_deleted_on_its_camera(
    setup_page: Page, editor: Service
) -> None:
    setup_page.get_by_test_id("draw-occluder").click()
    clicked = click_image(setup_page, [(420, 300), (560, 300), (560, 380), (420, 380)])
    setup_page.get_by_test_id("finish-shape").click()
    occluder = setup_page.locator('[data-shape-id="occluder 1"] polygon')
    expect(occluder).to_have_class("occluder selected")  # its own outline, not a mask's
    expect(setup_page.locator('#shapes li[data-shape-type="occluder"]')).to_contain_text("occluder")
    save(setup_page)
    camera = saved_layout(editor)["cameras"][0]
    assert camera["id"] == "plaza"
    assert camera["masks"] == []
    assert len(camera["occluders"]) == 1
    assert_close(camera["occluders"][0], clicked)

    box, scale = view_geometry(setup_page)
    setup_page.locator('#shapes li[data-shape-type="occluder"]').click()
    expect(setup_page.locator("#props-title")).to_have_text("Occluder 1")
    expect(setup_page.get_by_test_id("vertex-handle")).to_have_count(4)
    start, end = clicked[1], (clicked[1][0] + 40, clicked[1][1] - 30)
    setup_page.mouse.move(box["x"] + start[0] * scale, box["y"] + start[1] * scale)
    setup_page.mouse.down()
    setup_page.mouse.move(box["x"] + end[0] * scale, box["y"] + end[1] * scale, steps=5)
    setup_page.mouse.up()
    save(setup_page)
    moved = saved_layout(editor)["cameras"][0]["occluders"][0]
    assert_close(moved, [clicked[0], end, clicked[2], clicked[3]])

    setup_page.get_by_test_id("delete-shape").click()
    save(setup_page)
    assert saved_layout(editor)["cameras"][0]["occluders"] == []


def test_a_self_intersecting_occluder_shows_the_servers_message_on_it(
    setup_page: Page, editor: Service
) -> None:
    setup_page.get_by_test_id("draw-mask").click()  # a valid mask first: the error is not its
    click_image(setup_page, [(20, 20), (120, 20), (120, 90), (20, 90)])
    setup_page.get_by_test_id("finish-shape").click()
    setup_page.get_by_test_id("draw-occluder").click()
    click_image(setup_page, [(450, 80), (700, 300), (700, 80), (450, 300)])  # a bow tie
    setup_page.get_by_test_id("finish-shape").click()
    setup_page.get_by_test_id("save-layout").click()
    errors = setup_page.get_by_test_id("layout-errors")
    expect(errors).to_contain_text("cameras[0].occluders[0]: self-intersecting")
    expect(setup_page.get_by_test_id("shape-error")).to_have_count(1)
    assert_error_beside(setup_page, "occluder 1", "self-intersecting")
    expect(setup_page.locator('[data-shape-id="occluder 1"] polygon')).to_have_class(
        "occluder selected invalid"
    )
    expect(setup_page.locator('#shapes li[data-shape-type="occluder"] .error')).to_contain_text(
        "self-intersecting"
    )
    expect(setup_page.locator('#shapes li[data-shape-type="mask"] .error')).to_have_count(0)
    camera = saved_layout(editor)["cameras"][0]
    assert camera["masks"] == [] and camera["occluders"] == []


def test_drag_a_vertex_undo_and_delete(setup_page: Page, editor: Service) -> None:
    box, scale = view_geometry(setup_page)
    setup_page.locator('#shapes li[data-shape-type="zone"]').first.click()
    handles = setup_page.get_by_test_id("vertex-handle")
    expect(handles).to_have_count(4)
    start = (300 * scale, 300 * scale)  # the zone's vertex [300, 300]
    end = (350 * scale, 250 * scale)
    setup_page.mouse.move(box["x"] + start[0], box["y"] + start[1])
    setup_page.mouse.down()
    setup_page.mouse.move(box["x"] + end[0], box["y"] + end[1], steps=5)
    setup_page.mouse.up()
    save(setup_page)
    polygon = saved_layout(editor)["zones"][0]["polygon"]
    assert_close([polygon[1]], [(350, 250)])
    assert_close([polygon[0], polygon[2], polygon[3]], [(0, 300), (300, 576), (0, 576)])

    setup_page.get_by_test_id("undo").click()  # back to [300, 300]
    save(setup_page)
    assert_close([saved_layout(editor)["zones"][0]["polygon"][1]], [(300, 300)])

    setup_page.get_by_test_id("draw-zone").click()
    click_image(setup_page, [(500, 100), (600, 100), (600, 200)])
    setup_page.get_by_test_id("undo").click()  # while drawing: drops the last point
    expect(setup_page.locator("#props-title")).to_contain_text("2 points")
    click_image(setup_page, [(550, 250)])
    setup_page.get_by_test_id("finish-shape").click()
    expect(setup_page.locator("#shapes li")).to_have_count(3)
    setup_page.get_by_test_id("undo").click()  # removes the finished zone
    expect(setup_page.locator("#shapes li")).to_have_count(2)

    setup_page.locator('#shapes li[data-shape-type="line"]').click()
    setup_page.get_by_test_id("delete-shape").click()
    save(setup_page)
    after = saved_layout(editor)
    assert after["lines"] == []
    assert [zone["id"] for zone in after["zones"]] == ["left"]


def test_yaml_download_and_upload(editor: Service) -> None:
    with editor.api() as api:
        assert api.put("/v1/layout", json=editor.layout).status_code == 200
        downloaded = api.get("/v1/layout", params={"format": "yaml"})
        assert downloaded.status_code == 200
        assert downloaded.headers["content-type"].startswith("application/yaml")
        data = yaml.safe_load(downloaded.text)
        assert data["zones"][0]["polygon"] == [[0, 300], [300, 300], [300, 576], [0, 576]]
        data["zones"][0]["id"] = "renamed"
        for content_type in ("application/yaml", "text/yaml"):
            body = yaml.safe_dump(data)
            response = api.put("/v1/layout", content=body, headers={"Content-Type": content_type})
            assert response.status_code == 200, response.text
            assert api.get("/v1/layout").json()["zones"][0]["id"] == "renamed"
        data["zones"][0]["polygon"] = [[0, 0], [10, 10], [10, 0], [0, 10]]
        refused = api.put(
            "/v1/layout", content=yaml.safe_dump(data), headers={"Content-Type": "text/yaml"}
        )
        assert refused.status_code == 422
        assert refused.json()["errors"][0]["path"] == "zones[0].polygon"
        assert "self-intersecting" in refused.json()["errors"][0]["message"]


BILLION_LAUGHS = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]\n" for i in range(8)
)


@pytest.mark.parametrize(
    ("body", "content_type", "status", "says"),
    [
        ("zones: [", "application/yaml", 422, "not valid YAML/JSON at line 1"),
        ("- a list", "text/yaml", 422, "must be a mapping"),
        ('{"store": ', "application/json", 422, "not valid JSON"),
        ("<layout/>", "application/xml", 415, "neither JSON"),
        (b"\xff\xfe", "application/yaml", 422, "not UTF-8"),
        (BILLION_LAUGHS, "application/yaml", 422, "once its YAML aliases are expanded"),
        ("&loop [*loop]", "application/yaml", 422, "once its YAML aliases are expanded"),
        ("x" * 2_000_001, "application/yaml", 413, "byte limit"),
    ],
)
def test_bad_layout_bodies_are_4xx_with_a_reason(
    editor: Service, body: str | bytes, content_type: str, status: int, says: str
) -> None:
    with editor.api() as api:
        before = api.get("/v1/layout").json()
        response = api.put("/v1/layout", content=body, headers={"Content-Type": content_type})
        assert response.status_code == status, response.text
        assert says in response.text
        assert api.get("/v1/layout").json() == before


def test_a_display_key_cannot_open_setup_data(editor: Service, browser: Browser) -> None:
    page = editor.page(browser, "/setup", scope="display")
    expect(page.get_by_test_id("setup-denied")).to_contain_text("needs an admin key")
    expect(page.get_by_test_id("camera-select").locator("option")).to_have_count(0)
    expect(page.get_by_test_id("save-layout")).to_be_disabled()
    assert page.locator("[data-shape-id]").count() == 0
    with editor.api("display") as api:
        assert api.get("/v1/layout").status_code == 403
        assert api.get("/v1/layout", params={"format": "yaml"}).status_code == 403
        assert api.get("/v1/cameras/plaza/snapshot").status_code == 403
        assert api.put("/v1/layout", json=editor.layout).status_code == 403
    page.close()


def test_without_a_key_the_app_asks_for_one(editor: Service, browser: Browser) -> None:
    page = browser.new_page(viewport=VIEWPORT)
    page.goto(editor.url + "/setup")
    dialog = page.get_by_test_id("sign-in")
    expect(dialog).to_be_visible()
    page.get_by_test_id("sign-in-key").fill(editor.keys["admin"])
    page.get_by_test_id("sign-in-submit").click()
    expect(page.get_by_test_id("camera-select").locator("option")).to_have_count(2)
    page.goto(editor.url + "/")  # kept in the browser: no second prompt
    expect(page.locator("#status")).to_have_text("live")
    expect(page.get_by_test_id("sign-in")).to_have_count(0)
    page.close()


# ============================================================ the dashboard
CAMERA = "shop-cam"  # not cam1: frame counters are per process and other tests count cam1's


def visits(store_id: str, start: float, end: float, count: int, seed: int) -> list[Event]:
    """``count`` synthetic passers-by between ``start`` and ``end``; some come in through
    the door and stay a while in the shop zone (then leave)."""
    rng = random.Random(seed)
    events: list[Event] = []
    for n in range(count):
        track = 100_000 * seed + n
        at = rng.uniform(start, max(start + 1, end - 200))
        events += [
            Event.create(EventType.ZONE_ENTER, store_id, "shop-cam", "street", track, at),
            Event.create(
                EventType.ZONE_EXIT, store_id, CAMERA, "street", track, at + 4, {"dwell_seconds": 4}
            ),
        ]
        if rng.random() < 0.45:
            stay = rng.uniform(10, 150)
            events += [
                Event.create(
                    EventType.LINE_CROSS,
                    store_id,
                    "shop-cam",
                    "door",
                    track,
                    at + 5,
                    {"direction": "in"},
                ),
                Event.create(EventType.ZONE_ENTER, store_id, "shop-cam", "shop", track, at + 6),
                Event.create(
                    EventType.ZONE_EXIT,
                    store_id,
                    "shop-cam",
                    "shop",
                    track,
                    at + 6 + stay,
                    {"dwell_seconds": round(stay, 3)},
                ),
                Event.create(
                    EventType.LINE_CROSS,
                    store_id,
                    "shop-cam",
                    "door",
                    track,
                    at + 7 + stay,
                    {"direction": "out"},
                ),
            ]
    return events


@pytest.fixture(scope="module")
def shop(
    tmp_path_factory: pytest.TempPathFactory, pets09: Path, detector: Any
) -> Iterator[Service]:
    """A served store whose camera has processed a PETS09 clip (then finished), with today's
    and last week's visits and today's till transactions."""
    folder = tmp_path_factory.mktemp("shop")
    clip = cut_clip(pets09 / "PETS09-S2L1.avi", folder / "clip.avi", 140)
    store = open_store(f"sqlite:///{folder / 'shop.db'}", f"shop{uuid.uuid4().hex[:6]}")
    layout_data = {
        "store": {"id": store.store_id, "timezone": "UTC"},
        "cameras": [
            {
                "id": "shop-cam",
                "source": str(clip),
                "fps": 7,
                "homography": {  # examples/pets09.yaml: a floor heatmap is published
                    "image_points": [[50, 550], [718, 550], [524, 150], [244, 150]],
                    "floor_points": [[0, 0], [10, 0], [10, 15], [0, 15]],
                },
            }
        ],
        "zones": [
            {
                "id": "street",
                "camera": "shop-cam",
                "kind": "passerby",
                "polygon": [[0, 0], [384, 0], [384, 576], [0, 576]],
            },
            {
                "id": "shop",
                "camera": "shop-cam",
                "polygon": [[384, 0], [768, 0], [768, 576], [384, 576]],
            },
        ],
        "lines": [
            {
                "id": "door",
                "camera": "shop-cam",
                "points": [[384, 0], [384, 576]],
                "inside": [600, 300],
                "entrance": True,
            }
        ],
    }
    layout = StoreLayout.model_validate(layout_data)
    settings = ServiceSettings(store_url="sqlite:///unused.db", realtime=False)
    supervisor = WorkerSupervisor(
        layout, store, settings, pipeline_factory=pipeline_factory_for(detector)
    )
    keys = add_keys(store)
    with LiveServer(create_app(settings, store, layout, supervisor=supervisor)) as server:
        service = Service(server.url, store, layout_data, keys)
        with service.api("analyst") as api:
            wait_for(
                lambda: api.get("/v1/cameras").json()[0]["state"] == "finished",
                timeout=120,
                what="the clip processed",
            )
            now = time.time()
            midnight = now // 86400 * 86400
            store.write_events(visits(store.store_id, midnight, now - 60, 400, seed=1))
            store.write_events(
                visits(store.store_id, midnight - 7 * 86400, now - 7 * 86400, 300, seed=2)
            )
            hours = [midnight + 3600 * h for h in range(int((now - midnight) // 3600) + 1)]
            till = {"buckets": [{"start": h, "count": 5 + i % 4} for i, h in enumerate(hours)]}
            assert api.post("/v1/transactions", json=till).status_code in (200, 204)
        store.set_occupancy("shop-cam", {"street": 2, "shop": 5}, time.time())
        yield service
    store.close()


def texts(page: Page, selector: str) -> list[str]:
    return [text.strip() for text in page.locator(selector).all_text_contents()]


def to_fixed(value: float, digits: int) -> str:
    """``value`` as the page writes it (JavaScript's ``toFixed`` / ``Math.round``): the
    exact binary value rounded, ties up (Python's format rounds ties to even: 85.25 would
    read 85.2 where the page shows 85.3)."""
    return str(Decimal(value).quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP))


def pct(rate: float | None) -> str:
    return "–" if rate is None else f"{to_fixed(rate * 100, 1)} %"


def test_dashboard_shows_the_numbers_the_api_returns(shop: Service, browser: Browser) -> None:
    page = shop.page(browser, "/", scope="analyst")
    expect(page.locator("body")).to_have_attribute("data-loaded", "true", timeout=30_000)
    with shop.api("analyst") as api:
        metrics = api.get("/v1/metrics", params={"bucket": "1h"}).json()
        counts = api.get("/v1/counts", params={"bucket": "1d"}).json()
        start, end = counts["start"], counts["end"]
        week_ago = api.get(
            "/v1/metrics", params={"from": start - 7 * 86400, "to": end - 7 * 86400, "bucket": "1h"}
        ).json()
        cameras = api.get("/v1/cameras").json()
        funnel = api.get("/v1/funnel", params={"from": start, "to": end})
        store_wide = api.get("/v1/occupancy").json().get("store") or {}
    assert metrics["footfall"] > 50 and metrics["passersby"] > 100  # the day is not empty

    occupancy = page.get_by_test_id("occupancy")
    expect(occupancy.locator('.card[data-zone="street"] .count')).to_have_text("2")
    expect(occupancy.locator('.card[data-zone="shop"] .count')).to_have_text("5")
    # The store-wide count of the (finished) camera when the API has one, else the zones' sum.
    total = store_wide["count"] if store_wide.get("updated_at") is not None else 7
    expect(page.locator("#store-total")).to_have_text(str(total))

    kpis = page.get_by_test_id("kpis")
    expect(kpis.locator('[data-kpi="footfall"]')).to_have_text(str(metrics["footfall"]))
    expect(kpis.locator('[data-kpi="passersby"]')).to_have_text(str(metrics["passersby"]))
    expect(kpis.locator('[data-kpi="bounce_rate"]')).to_have_text(pct(metrics["bounce_rate"]))
    expect(kpis.locator('[data-kpi="sales_conversion"]')).to_have_text(
        pct(metrics["sales_conversion"])
    )
    expect(kpis.locator('[data-kpi="transactions"]')).to_have_text(str(metrics["transactions"]))

    stages = page.get_by_test_id("funnel")
    assert funnel.status_code == 200, funnel.text  # (without it: the test below)
    for stage in funnel.json()["stages"]:
        row = stages.locator(f'li[data-stage="{stage["stage"]}"]')
        expect(row.locator(".count")).to_have_text(str(stage["count"]))
        rate = "" if stage["rate"] is None else pct(stage["rate"])
        expect(row.locator(".rate")).to_have_text(rate)
    expect(stages.locator('li[data-stage="bounce"] .rate')).to_have_text(
        pct(funnel.json()["bounce_rate"])
    )

    chart = page.get_by_test_id("trend-chart")
    expect(chart.locator("canvas")).to_have_count(1)
    rows = page.locator("#trend-table tbody tr")
    expect(rows).to_have_count(len(metrics["buckets"]))
    shown_now = [int(t) for t in texts(page, "#trend-table tbody tr td:nth-child(2)")]
    shown_before = [int(t) for t in texts(page, "#trend-table tbody tr td:nth-child(3)")]
    assert shown_now == [b["footfall"] for b in metrics["buckets"]]
    assert shown_before == [b["footfall"] for b in week_ago["buckets"]]
    assert sum(shown_before) > 0

    shop_row = page.locator('#dwell tr[data-zone="shop"] td')
    dwell = metrics["dwell"]["shop"]
    expect(shop_row.nth(1)).to_have_text(str(dwell["visits"]))
    expect(shop_row.nth(2)).to_have_text(to_fixed(dwell["mean_seconds"], 1))
    expect(shop_row.nth(4)).to_have_text(to_fixed(dwell["p90_seconds"], 1))

    entries = sum(
        r["count"] for r in counts["rows"] if r["target"] == "shop" and r["measure"] == "entries"
    )
    expect(
        page.locator('#today tr[data-target="shop"][data-measure="entries"] td.num')
    ).to_have_text(str(entries))
    camera_row = page.locator('#cameras tr[data-camera="shop-cam"] td')
    expect(camera_row.nth(1)).to_have_text("finished")
    expect(camera_row.nth(3)).to_have_text(str(cameras[0]["frames_processed"]))
    with shop.api("analyst") as api:
        journeys = api.get("/v1/journeys", params={"from": start, "to": end}).json()
    expect(page.get_by_test_id("paths").locator(".note")).to_contain_text(
        f"{journeys['visits']} visits"
    )
    top = journeys["paths"][0]
    expect(page.locator("#paths tbody tr").first.locator("td")).to_have_text(
        [" → ".join(top["path"]), str(top["visits"])]
    )

    with page.expect_download() as download:
        page.get_by_test_id("csv-download").click()
    csv_text = Path(download.value.path()).read_text()
    assert f"kpis,footfall,{metrics['footfall']}" in csv_text
    assert "occupancy,shop,5" in csv_text

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "dashboard.png"))
    assert not page.errors  # type: ignore[attr-defined]
    page.close()


def test_another_range_and_bucket(shop: Service, browser: Browser) -> None:
    page = shop.page(browser, "/", scope="analyst")
    expect(page.locator("body")).to_have_attribute("data-loaded", "true", timeout=30_000)
    start = time.time() // 86400 * 86400 - 7 * 86400
    day = time.strftime("%Y-%m-%d", time.gmtime(start))
    page.get_by_test_id("range-from").fill(day)
    page.get_by_test_id("range-to").fill(day)
    page.get_by_test_id("range-bucket").select_option("15m")
    page.get_by_role("button", name="Show").click()
    with shop.api("analyst") as api:
        metrics = api.get(
            "/v1/metrics", params={"from": start, "to": start + 86400, "bucket": "15m"}
        ).json()
    expect(page.locator("#trend-table tbody tr")).to_have_count(96)
    expect(page.get_by_test_id("kpis").locator('[data-kpi="footfall"]')).to_have_text(
        str(metrics["footfall"])
    )
    page.close()


def test_a_display_key_sees_occupancy_and_a_sentence_for_the_rest(
    shop: Service, browser: Browser
) -> None:
    page = shop.page(browser, "/", scope="display")
    expect(page.locator('.card[data-zone="shop"] .count')).to_have_text("5")
    expect(page.locator("body")).to_have_attribute("data-loaded", "true", timeout=30_000)
    for panel in ("kpis", "dwell", "camera-health", "heatmap"):
        expect(page.get_by_test_id(panel).locator(".note")).to_contain_text(
            "it needs a key with the analyst scope"
        )
    expect(page.get_by_test_id("kpis").locator("dd")).to_have_count(0)
    expect(page.get_by_test_id("sign-in")).to_have_count(0)  # a known key: no sign-in prompt
    page.close()


def test_the_floor_heatmap_draws_what_the_api_returns(shop: Service, browser: Browser) -> None:
    page = shop.page(browser, "/", scope="analyst")
    expect(page.locator("body")).to_have_attribute("data-loaded", "true", timeout=30_000)
    with shop.api("analyst") as api:
        heatmap = api.get("/v1/heatmap").json()  # today, as the dashboard
    assert heatmap["cells"] and heatmap["cameras"] == ["shop-cam"]
    canvas = page.get_by_test_id("heatmap").locator("canvas")
    expect(canvas).to_be_visible()
    expect(canvas).to_have_attribute("data-cells", str(len(heatmap["cells"])))
    rows, cols = heatmap["shape"]
    size = canvas.evaluate("c => [c.width, c.height]")
    assert size[0] * rows == size[1] * cols  # square cells
    # The busiest cell is drawn darkest, an empty corner stays background.
    busiest = max(heatmap["cells"], key=lambda c: c[2])
    scale = size[0] / cols
    column = int((busiest[0] - heatmap["origin_m"][0]) / heatmap["cell_m"])
    row = int((busiest[1] - heatmap["origin_m"][1]) / heatmap["cell_m"])
    pixels = canvas.evaluate(
        """(c, [x, y]) => {
            const ctx = c.getContext("2d");
            return [[...ctx.getImageData(x, y, 1, 1).data], [...ctx.getImageData(0, 0, 1, 1).data]];
        }""",
        [int((column + 0.5) * scale), int((row + 0.5) * scale)],
    )
    busiest_pixel, corner = pixels
    assert busiest_pixel[:3] == [200, 40, 20]  # full opacity of the heat colour
    occupied = {
        (int((x - heatmap["origin_m"][0]) / 0.5), int((y - heatmap["origin_m"][1]) / 0.5))
        for x, y, _ in heatmap["cells"]
    }
    if (0, 0) not in occupied:
        assert corner[:3] == [244, 245, 247]
    expect(page.get_by_test_id("heatmap").locator(".note")).to_contain_text(
        f"{to_fixed(heatmap['person_seconds'], 0)} person-seconds"
    )
    with page.expect_download() as download:
        page.get_by_test_id("csv-download").click()
    assert "heatmap,x_m,y_m,person_seconds" in Path(download.value.path()).read_text()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.get_by_test_id("heatmap").screenshot(path=str(SCREENSHOTS / "heatmap.png"))
    assert not page.errors  # type: ignore[attr-defined]
    page.close()


def test_without_a_homography_the_heatmap_is_a_sentence(editor: Service, browser: Browser) -> None:
    page = editor.page(browser, "/", scope="analyst")
    expect(page.locator("body")).to_have_attribute("data-loaded", "true", timeout=30_000)
    panel = page.get_by_test_id("heatmap")
    expect(panel.locator(".note")).to_have_text(
        "No camera has a floor plan (a homography in the layout), so there is no floor heatmap."
    )
    expect(panel.locator("canvas")).to_be_hidden()
    page.close()


def test_camera_health_shows_fps_and_why_frames_were_dropped(
    editor: Service, browser: Browser
) -> None:
    with editor.api() as api:
        broken = b"\xff\xd8\xff" + b"not really a jpeg" * 10
        pushed = api.post(
            "/v1/cameras/push-cam/frames", content=broken, headers={"Content-Type": "image/jpeg"}
        )
        assert pushed.status_code == 422
        live = wait_for(
            lambda: (c := api.get("/v1/cameras").json()) and c[0]["fps"] > 1 and c,
            what="the looped camera's frame rate",
        )
    assert live[1]["frames_dropped"]["undecodable"] >= 1
    assert 1 < live[0]["fps"] < 15  # PETS09 paced at its real 7 fps
    page = editor.page(browser, "/", scope="analyst")
    door = page.locator('#cameras tr[data-camera="push-cam"] td')
    expect(door.nth(4)).to_contain_text(f"{live[1]['frames_dropped']['undecodable']} undecodable")
    plaza = page.locator('#cameras tr[data-camera="plaza"] td')
    expect(plaza.nth(1)).to_have_text("running")
    fps = float(plaza.nth(2).inner_text())
    assert 1 < fps < 15
    page.close()


def test_a_camera_without_a_picture_still_takes_shapes_and_yaml_downloads(
    setup_page: Page, editor: Service
) -> None:
    setup_page.get_by_test_id("camera-select").select_option("push-cam")
    expect(setup_page.get_by_test_id("no-frame")).to_contain_text("pictures are off")
    expect(setup_page.locator("[data-shape-id]")).to_have_count(0)  # plaza's shapes are gone
    view = setup_page.get_by_test_id("camera-view")
    width = float(view.get_attribute("data-image-width") or 0)
    box = view.bounding_box()
    assert box is not None and width == 1280  # a blank frame of the default size
    scale = box["width"] / width
    setup_page.get_by_test_id("draw-zone").click()
    points = [(300, 100), (500, 120), (450, 300)]
    for x, y in points:
        setup_page.mouse.click(box["x"] + x, box["y"] + y)
    setup_page.get_by_test_id("shape-id").fill("door-queue")
    setup_page.get_by_test_id("finish-shape").click()
    save(setup_page)
    zones = {zone["id"]: zone for zone in saved_layout(editor)["zones"]}
    assert zones["door-queue"]["camera"] == "push-cam"
    assert_close(zones["door-queue"]["polygon"], [(x / scale, y / scale) for x, y in points])

    with setup_page.expect_download() as download:
        setup_page.get_by_test_id("download-yaml").click()
    assert download.value.suggested_filename == f"{editor.store_id}.yaml"
    downloaded = yaml.safe_load(Path(download.value.path()).read_text())
    assert StoreLayout.model_validate(downloaded).zone("door-queue").camera == "push-cam"


def test_other_server_versions_degrade_to_a_sentence(shop: Service, browser: Browser) -> None:
    """A server without the journeys API (404) and one whose occupancy also carries
    ``approaching`` (the display poll): the responses are the real ones, edited in flight."""
    page = browser.new_page(viewport=VIEWPORT)
    for path in ("/v1/funnel", "/v1/journeys"):
        page.route(
            f"**{path}?*",
            lambda route: route.fulfill(status=404, json={"detail": "Not Found"}),
        )

    def with_approaching(route: Any) -> None:
        response = route.fetch()
        if response.status != 200:
            route.fulfill(response=response)
            return
        body = response.json()
        for zone in body["zones"].values():
            zone["approaching"] = 3 if zone["zone"] == "shop" else 0
        route.fulfill(response=response, json=body)

    page.route("**/v1/occupancy", with_approaching)
    page.goto(f"{shop.url}/#key={shop.keys['analyst']}")
    expect(page.locator("body")).to_have_attribute("data-loaded", "true", timeout=30_000)
    expect(page.locator('.card[data-zone="shop"] .approaching')).to_have_text("3 approaching")
    with shop.api("analyst") as api:
        metrics = api.get("/v1/metrics", params={"bucket": "1h"}).json()
    funnel = page.get_by_test_id("funnel")
    expect(funnel.locator('li[data-stage="entered"] .count')).to_have_text(str(metrics["footfall"]))
    expect(funnel.locator('li[data-stage="engaged"]')).to_have_count(0)
    expect(funnel.locator(".note")).to_contain_text("need a server with the journeys API")
    expect(page.get_by_test_id("paths").locator(".note")).to_have_text(
        "This server does not offer paths between zones yet."
    )
    expect(page.get_by_test_id("paths").locator("table").first).to_be_hidden()
    page.close()
