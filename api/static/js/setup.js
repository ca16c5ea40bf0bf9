// The operator's zone editor: draw zones, lines (with their "in" side), masks and occluders
// on a camera's pixelated frame, in image pixels, and save the layout with PUT /v1/layout.
import { authHeaders, el, request, wireSignOut } from "./api.js";

const SVG = "http://www.w3.org/2000/svg";
const KINDS = ["area", "entrance", "passerby", "queue", "shelf", "staff_only", "display"];
const ANCHORS = ["bottom_center", "center", "top_center"];
const FALLBACK_SIZE = { width: 1280, height: 720 };
// Shapes that are a bare point list on the camera (cameras[i].masks, cameras[i].occluders), no id.
const CAMERA_POLYGONS = {
  mask: { field: "masks", title: "Mask", about: "People whose feet fall in a mask are ignored (posters, mannequins)." },
  occluder: {
    field: "occluders", title: "Occluder",
    about: "A static object that can hide a person's legs (shelf end, counter, sign): a box cut off at it keeps the person's recent height.",
  },
};
const isCameraPolygon = (type) => Object.hasOwn(CAMERA_POLYGONS, type);

const state = {
  layout: null,
  camera: null,
  frame: { width: FALLBACK_SIZE.width, height: FALLBACK_SIZE.height, url: null },
  scale: 1,
  selected: null, // {type: "zone"|"line"|"mask"|"occluder", index}
  draft: null, // {type, points: [[x, y]...], inside: [x, y] | null}
  history: [],
  errors: [],
  drag: null,
};

const $ = (selector) => document.querySelector(selector);
const view = $("#camera-view");

function message(text, kind = "") {
  const box = $("#message");
  box.textContent = text;
  box.className = `message ${kind}`;
}

// ------------------------------------------------------------------ layout access
function cameraIndex(id = state.camera) {
  return state.layout.cameras.findIndex((c) => c.id === id);
}

function cameraConfig() {
  return state.layout.cameras[cameraIndex()];
}

/** Every shape of the selected camera: {type, index, id, label}. */
function shapesOfCamera() {
  const shapes = [];
  state.layout.zones.forEach((zone, index) => {
    if (zone.camera === state.camera) shapes.push({ type: "zone", index, id: zone.id, drawn: !!zone.polygon });
  });
  state.layout.lines.forEach((line, index) => {
    if (line.camera === state.camera) shapes.push({ type: "line", index, id: line.id, drawn: (line.coordinates || "image") === "image" });
  });
  for (const [type, { field }] of Object.entries(CAMERA_POLYGONS)) {
    (cameraConfig()?.[field] || []).forEach((_, index) => shapes.push({ type, index, id: `${type} ${index + 1}`, drawn: true }));
  }
  return shapes;
}

function shapeObject(shape) {
  if (shape.type === "zone") return state.layout.zones[shape.index];
  if (shape.type === "line") return state.layout.lines[shape.index];
  return cameraConfig()[CAMERA_POLYGONS[shape.type].field][shape.index];
}

/** The points of a shape in image pixels (a mask or an occluder is its point list). */
function shapePoints(shape) {
  const obj = shapeObject(shape);
  if (shape.type === "zone") return obj.polygon;
  if (shape.type === "line") return [...obj.points, obj.inside];
  return obj;
}

function setShapePoint(shape, vertex, point) {
  const obj = shapeObject(shape);
  if (shape.type === "zone") obj.polygon[vertex] = point;
  else if (isCameraPolygon(shape.type)) obj[vertex] = point;
  else if (vertex < 2) obj.points[vertex] = point;
  else obj.inside = point;
}

/** The shape a server path names: zones[2].polygon, lines[0].inside, cameras[0].masks[1], cameras[0].occluders[1]. */
function shapeOfPath(path) {
  let match = /^(?:body\.)?zones\[(\d+)\]/.exec(path);
  if (match) return { type: "zone", index: +match[1], camera: state.layout.zones[+match[1]]?.camera };
  match = /^(?:body\.)?lines\[(\d+)\]/.exec(path);
  if (match) return { type: "line", index: +match[1], camera: state.layout.lines[+match[1]]?.camera };
  match = /^(?:body\.)?cameras\[(\d+)\]\.(\w+)\[(\d+)\]/.exec(path);
  const type = match && Object.keys(CAMERA_POLYGONS).find((t) => CAMERA_POLYGONS[t].field === match[2]);
  if (type) return { type, index: +match[3], camera: state.layout.cameras[+match[1]]?.id };
  return null;
}

function errorsOf(shape) {
  return state.errors.filter((e) => {
    const named = shapeOfPath(e.path);
    return named && named.type === shape.type && named.index === shape.index && named.camera === state.camera;
  });
}

function sameShape(a, b) {
  return a && b && a.type === b.type && a.index === b.index;
}

// ------------------------------------------------------------------ history
function remember() {
  state.history.push(JSON.stringify(state.layout));
  if (state.history.length > 200) state.history.shift();
}

function undo() {
  if (state.draft && (state.draft.inside || state.draft.points.length)) {
    if (state.draft.inside) state.draft.inside = null;
    else state.draft.points.pop();
  } else if (state.draft) {
    state.draft = null;
  } else if (state.history.length) {
    state.layout = JSON.parse(state.history.pop());
    state.selected = null;
  }
  render();
}

function uniqueId(prefix, taken) {
  let n = 1;
  while (taken.has(`${prefix}-${n}`)) n += 1;
  return `${prefix}-${n}`;
}

// ------------------------------------------------------------------ drawing
function startDrawing(type) {
  if (!state.layout || !state.camera) return;
  state.draft = { type, points: [], inside: null };
  state.selected = null;
  $("#shape-id").value = "";
  render();
  $("#hint").textContent = type === "line"
    ? "Click the line's two ends, then a point on its \"in\" side."
    : `Click each corner of the ${type}; Finish shape closes it (at least 3 points).`;
}

function imagePoint(event) {
  const rect = view.getBoundingClientRect();
  const x = ((event.clientX - rect.left) * state.frame.width) / rect.width;
  const y = ((event.clientY - rect.top) * state.frame.height) / rect.height;
  const round = (v, max) => Math.round(Math.min(Math.max(v, 0), max) * 10) / 10;
  return [round(x, state.frame.width), round(y, state.frame.height)];
}

function defaultInside(points) {
  const [[ax, ay], [bx, by]] = points;
  const length = Math.hypot(bx - ax, by - ay) || 1;
  const offset = Math.max(20, length / 4);
  return [Math.round(((ax + bx) / 2 - ((by - ay) / length) * offset) * 10) / 10,
    Math.round(((ay + by) / 2 + ((bx - ax) / length) * offset) * 10) / 10];
}

function finishShape() {
  const draft = state.draft;
  if (!draft) return;
  const needed = draft.type === "line" ? 2 : 3;
  if (draft.points.length < needed) {
    message(`A ${draft.type} needs at least ${needed} points.`, "bad");
    return;
  }
  remember();
  const typed = $("#shape-id").value.trim();
  let selected;
  if (draft.type === "zone") {
    const id = typed || uniqueId("zone", new Set(state.layout.zones.map((z) => z.id)));
    state.layout.zones.push({ id, camera: state.camera, kind: "area", polygon: draft.points });
    selected = { type: "zone", index: state.layout.zones.length - 1 };
  } else if (draft.type === "line") {
    const id = typed || uniqueId("line", new Set(state.layout.lines.map((l) => l.id)));
    const points = draft.points.slice(0, 2);
    state.layout.lines.push({ id, camera: state.camera, points, inside: draft.inside || defaultInside(points) });
    selected = { type: "line", index: state.layout.lines.length - 1 };
  } else {
    const camera = cameraConfig();
    const { field } = CAMERA_POLYGONS[draft.type];
    camera[field] = camera[field] || [];
    camera[field].push(draft.points);
    selected = { type: draft.type, index: camera[field].length - 1 };
  }
  state.draft = null;
  state.selected = selected;
  message("Not saved yet: Save layout applies it.");
  $("#hint").textContent = "Drag a corner to move it; select a shape to edit or delete it.";
  render();
}

function deleteSelected() {
  const shape = state.selected;
  if (!shape) return;
  remember();
  if (shape.type === "zone") state.layout.zones.splice(shape.index, 1);
  else if (shape.type === "line") state.layout.lines.splice(shape.index, 1);
  else cameraConfig()[CAMERA_POLYGONS[shape.type].field].splice(shape.index, 1);
  state.selected = null;
  state.errors = [];
  message("Deleted (not saved yet).");
  render();
}

// ------------------------------------------------------------------ pointer handling
function onViewClick(event) {
  if (state.drag?.moved) return;
  if (state.draft) {
    const point = imagePoint(event);
    if (state.draft.type === "line" && state.draft.points.length >= 2) {
      state.draft.inside = point;
      finishShape();
      return;
    }
    state.draft.points.push(point);
    render();
    return;
  }
  const target = event.target.closest("[data-shape-type]");
  state.selected = target ? { type: target.dataset.shapeType, index: +target.dataset.shapeIndex } : null;
  render();
}

function onPointerDown(event) {
  const handle = event.target.closest(".handle");
  if (!handle || state.draft) return;
  event.preventDefault();
  remember();
  state.drag = { vertex: +handle.dataset.vertex, moved: false, pointer: event.pointerId };
  view.setPointerCapture(event.pointerId);
}

function onPointerMove(event) {
  if (!state.drag || event.pointerId !== state.drag.pointer) return;
  state.drag.moved = true;
  setShapePoint(state.selected, state.drag.vertex, imagePoint(event));
  render();
}

function onPointerUp(event) {
  if (!state.drag) return;
  const moved = state.drag.moved;
  if (!moved) state.history.pop();
  view.releasePointerCapture(event.pointerId);
  setTimeout(() => { state.drag = null; }, 0);
  if (moved) message("Moved (not saved yet).");
}

// ------------------------------------------------------------------ rendering
function svgEl(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

const pointList = (points) => points.map((p) => p.join(",")).join(" ");

function inArrow(points, inside, group, unit) {
  const [[ax, ay], [bx, by]] = points;
  const mx = (ax + bx) / 2;
  const my = (ay + by) / 2;
  const length = Math.hypot(bx - ax, by - ay) || 1;
  let nx = -(by - ay) / length;
  let ny = (bx - ax) / length;
  if ((inside[0] - mx) * nx + (inside[1] - my) * ny < 0) [nx, ny] = [-nx, -ny];
  const tip = [mx + nx * 36 * unit, my + ny * 36 * unit];
  const wing = 9 * unit;
  group.append(svgEl("path", {
    class: "in-arrow",
    d: `M${mx},${my} L${tip[0]},${tip[1]} M${tip[0] - nx * wing + ny * wing},${tip[1] - ny * wing - nx * wing} L${tip[0]},${tip[1]} L${tip[0] - nx * wing - ny * wing},${tip[1] - ny * wing + nx * wing}`,
  }));
  group.append(svgEl("text", { x: tip[0] + nx * 6 * unit, y: tip[1] + ny * 6 * unit, "font-size": 13 * unit, "stroke-width": 3 * unit }, "in"));
}

function renderSvg() {
  const { width, height } = state.frame;
  const unit = 1 / state.scale; // one screen pixel in image pixels
  const svg = svgEl("svg", { viewBox: `0 0 ${width} ${height}`, preserveAspectRatio: "none", "data-testid": "overlay" });
  const labels = [];
  for (const shape of shapesOfCamera()) {
    if (!shape.drawn) continue;
    const obj = shapeObject(shape);
    const selected = sameShape(shape, state.selected);
    const invalid = errorsOf(shape).length > 0;
    const classes = `${shape.type}${selected ? " selected" : ""}${invalid ? " invalid" : ""}`;
    const group = svgEl("g", { "data-shape-type": shape.type, "data-shape-index": shape.index, "data-shape-id": shape.id });
    let anchor;
    if (shape.type === "line") {
      group.append(svgEl("line", { class: classes, x1: obj.points[0][0], y1: obj.points[0][1], x2: obj.points[1][0], y2: obj.points[1][1] }));
      inArrow(obj.points, obj.inside, group, unit);
      anchor = obj.points[0];
    } else {
      const points = shapePoints(shape);
      group.append(svgEl("polygon", { class: classes, points: pointList(points) }));
      anchor = points.reduce((a, b) => (b[1] < a[1] ? b : a));
    }
    svg.append(group);
    // Labels stay inside the picture (a shape on its top edge would hide its name).
    anchor = [Math.min(anchor[0], width - 80 * unit), Math.max(anchor[1], 20 * unit)];
    labels.push(svgEl("text", { x: anchor[0] + 4 * unit, y: anchor[1] - 6 * unit, "font-size": 13 * unit, "stroke-width": 3 * unit }, shape.id));
    errorsOf(shape).forEach((error, i) => {
      labels.push(svgEl("text", {
        class: "error", "data-testid": "shape-error", x: anchor[0] + 4 * unit, y: anchor[1] + (14 + 16 * i) * unit,
        "font-size": 13 * unit, "stroke-width": 3 * unit,
      }, error.message.length > 90 ? error.message.slice(0, 87) + "…" : error.message));
    });
    if (selected) {
      shapePoints(shape).forEach((p, vertex) => svg.append(svgEl("circle", {
        class: "handle", cx: p[0], cy: p[1], r: 6 * unit, "data-vertex": vertex, "data-testid": "vertex-handle",
      })));
    }
  }
  if (state.draft) {
    const points = state.draft.points;
    if (state.draft.type === "line") {
      if (points.length === 2) svg.append(svgEl("polyline", { class: "draft", points: pointList(points) }));
    } else if (points.length > 1) {
      svg.append(svgEl("polygon", { class: "draft", points: pointList(points) }));
    }
    points.forEach((p) => svg.append(svgEl("circle", { class: "handle", cx: p[0], cy: p[1], r: 5 * unit })));
  }
  labels.forEach((label) => svg.append(label));
  return svg;
}

function renderView() {
  const panelWidth = view.parentElement.clientWidth - 32;
  const maxHeight = Math.max(300, window.innerHeight * 0.78);
  state.scale = Math.min(panelWidth / state.frame.width, maxHeight / state.frame.height);
  view.style.width = `${state.frame.width * state.scale}px`;
  view.style.height = `${state.frame.height * state.scale}px`;
  view.dataset.imageWidth = state.frame.width;
  view.dataset.imageHeight = state.frame.height;
  view.classList.toggle("drawing", !!state.draft);
  // The picture stays in place while shapes are redrawn (e.g. at each step of a drag).
  const picture = state.frame.url ? state.frame.image : state.frame.blank;
  if (picture && view.firstElementChild !== picture) view.replaceChildren(picture);
  if (!picture) view.replaceChildren();
  if (picture) [...view.children].slice(1).forEach((child) => child.remove());
  view.append(renderSvg());
}

function renderShapeList() {
  const list = $("#shapes");
  const shapes = shapesOfCamera();
  list.replaceChildren(...shapes.map((shape) => {
    const obj = shapeObject(shape);
    const kind = shape.type === "zone" ? `zone · ${obj.kind || "area"}` : shape.type === "line" ? `line${obj.entrance ? " · entrance" : ""}` : shape.type;
    const item = el("li", { className: sameShape(shape, state.selected) ? "selected" : "", dataset: { shapeType: shape.type, shapeIndex: shape.index } },
      el("span", {}, el("strong", {}, shape.id), " ", el("span", { className: "muted" }, kind + (shape.drawn ? "" : " · floor metres, not drawn"))));
    for (const error of errorsOf(shape)) item.append(el("span", { className: "error" }, `${error.path}: ${error.message}`));
    item.addEventListener("click", () => { state.selected = { type: shape.type, index: shape.index }; render(); });
    return item;
  }));
  if (!shapes.length) list.append(el("li", { className: "muted" }, "No zones, lines, masks or occluders on this camera yet."));
}

function numberField(obj, key, name, onChange, attrs = {}) {
  const input = el("input", { type: "number", step: "any", min: "0", value: obj[key] ?? "", placeholder: "default", ...attrs });
  input.addEventListener("change", () => {
    remember();
    if (input.value === "") delete obj[key]; else obj[key] = Number(input.value);
    onChange?.();
    render();
  });
  return el("label", {}, name, input);
}

function selectField(obj, key, name, options, fallback) {
  const select = el("select", {}, ...options.map((o) => el("option", { value: o, selected: (obj[key] || fallback) === o }, o)));
  select.addEventListener("change", () => {
    remember();
    obj[key] = select.value;
    render();
  });
  return el("label", {}, name, select);
}

function renderProps() {
  const props = $("#props");
  const idInput = $("#shape-id");
  const fields = $("#props-fields");
  fields.replaceChildren();
  if (state.draft) {
    props.hidden = false;
    $("#props-title").textContent = `New ${state.draft.type} (${state.draft.points.length} points)`;
    idInput.disabled = isCameraPolygon(state.draft.type);
    return;
  }
  if (!state.selected) {
    props.hidden = true;
    return;
  }
  props.hidden = false;
  const shape = state.selected;
  const obj = shapeObject(shape);
  const cameraPolygon = CAMERA_POLYGONS[shape.type];
  $("#props-title").textContent = cameraPolygon ? `${cameraPolygon.title} ${shape.index + 1}` : `${shape.type === "zone" ? "Zone" : "Line"} ${obj.id}`;
  idInput.disabled = !!cameraPolygon;
  idInput.value = cameraPolygon ? "" : obj.id;
  if (shape.type === "zone") {
    fields.append(selectField(obj, "kind", "Kind", KINDS, "area"), selectField(obj, "anchor", "Anchor", ANCHORS, "bottom_center"),
      numberField(obj, "min_inside_seconds", "Min inside s"), numberField(obj, "min_outside_seconds", "Min outside s"),
      numberField(obj, "min_dwell_seconds", "Min dwell s"), numberField(obj, "approach_seconds", "Approach s"));
    if (obj.kind === "staff_only") fields.append(numberField(obj, "staff_after_seconds", "Staff after s"));
    if (obj.kind === "shelf") {
      obj.shelf = obj.shelf || {};
      const grid = obj.shelf.grid || [3, 6];
      const gridBox = { rows: grid[0], cols: grid[1] };
      const setGrid = () => { obj.shelf.grid = [gridBox.rows, gridBox.cols]; };
      fields.append(numberField(obj.shelf, "reach_band_px", "Reach band px"),
        numberField(gridBox, "rows", "Grid rows", setGrid, { step: "1", min: "1" }),
        numberField(gridBox, "cols", "Grid cols", setGrid, { step: "1", min: "1" }),
        numberField(obj.shelf, "min_interaction_seconds", "Min interaction s"));
    }
  } else if (shape.type === "line") {
    const entrance = el("input", { type: "checkbox", checked: !!obj.entrance, dataset: { testid: "line-entrance" } });
    entrance.addEventListener("change", () => { remember(); obj.entrance = entrance.checked; render(); });
    const flip = el("button", { type: "button", dataset: { testid: "flip-in-side" } }, "Flip in side");
    flip.addEventListener("click", () => {
      remember();
      const [[ax, ay], [bx, by]] = obj.points;
      const [px, py] = obj.inside;
      const dx = bx - ax; const dy = by - ay;
      const t = ((px - ax) * dx + (py - ay) * dy) / (dx * dx + dy * dy);
      obj.inside = [Math.round((2 * (ax + t * dx) - px) * 10) / 10, Math.round((2 * (ay + t * dy) - py) * 10) / 10];
      render();
    });
    fields.append(el("label", {}, "Entrance (footfall)", entrance), selectField(obj, "anchor", "Anchor", ANCHORS, "bottom_center"),
      numberField(obj, "min_side_seconds", "Min side s"),
      numberField(obj, "depth", "Depth (box heights)", undefined, {
        max: "1",
        title: "Hysteresis band around the line, a fraction of the person's box height (default 0.04; 0 counts every side change)",
        dataset: { testid: "line-depth" },
      }),
      el("label", {}, "In side", flip));
  } else {
    fields.append(el("p", { className: "muted" }, cameraPolygon.about));
  }
}

function render() {
  if (!state.layout) return;
  renderView();
  renderShapeList();
  renderProps();
  $("#finish-shape").disabled = !state.draft;
  $("#cancel-shape").disabled = !state.draft;
  $("#delete-shape").disabled = !state.selected || !!state.draft;
  $("#undo").disabled = !state.draft && !state.history.length;
  const list = $("#layout-errors");
  list.replaceChildren(...state.errors.map((e) => el("li", { dataset: { path: e.path } }, e.path ? `${e.path}: ${e.message}` : e.message)));
}

// ------------------------------------------------------------------ frames
async function loadFrame() {
  const camera = state.camera;
  if (state.frame.url) URL.revokeObjectURL(state.frame.url);
  let response;
  try {
    response = await fetch(`/v1/cameras/${encodeURIComponent(camera)}/snapshot`, { cache: "no-store", headers: authHeaders() });
  } catch (err) {
    return showBlank("The service is unreachable.");
  }
  if (response.ok) {
    const blob = await response.blob();
    const url = URL.createObjectURL(blob);
    const image = new Image();
    image.src = url;
    await image.decode();
    Object.assign(image, { alt: `camera ${camera}, people pixelated`, draggable: false });
    state.frame = { width: image.naturalWidth, height: image.naturalHeight, url, image };
    render();
    return;
  }
  const body = await response.json().catch(() => ({}));
  if (response.status === 409) {
    const button = el("button", { type: "button", dataset: { testid: "enable-snapshots" } }, "Show the camera for 10 minutes");
    button.addEventListener("click", enableSnapshots);
    return showBlank("Camera pictures are off (privacy). An admin may turn them on for a while: every person is pixelated and each look is audited.", button);
  }
  if (response.status === 404) return showBlank(`No frame from ${camera} yet: ${body.detail || "the camera has not processed a frame"}. Try Refresh frame.`);
  return showBlank(`No picture: ${typeof body.detail === "string" ? body.detail : response.status}. You can still draw on a blank ${estimateSize().width}×${estimateSize().height} frame.`);
}

async function enableSnapshots() {
  const r = await request(`/v1/cameras/${encodeURIComponent(state.camera)}/debug`, {
    method: "PUT", body: JSON.stringify({ snapshots: true, ttl_seconds: 600 }),
    headers: { "Content-Type": "application/json" }, what: "camera pictures",
  });
  if (!r.ok) return showBlank(r.reason);
  for (let attempt = 0; attempt < 40; attempt += 1) {
    const probe = await fetch(`/v1/cameras/${encodeURIComponent(state.camera)}/snapshot`, { method: "GET", cache: "no-store", headers: authHeaders() });
    if (probe.ok) break;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  await loadFrame();
}

function estimateSize() {
  let width = 0;
  let height = 0;
  for (const shape of state.layout ? shapesOfCamera() : []) {
    if (!shape.drawn) continue;
    for (const [x, y] of shapePoints(shape)) { width = Math.max(width, x); height = Math.max(height, y); }
  }
  return width > 0 ? { width: Math.ceil(width / 16) * 16, height: Math.ceil(height / 16) * 16 } : FALLBACK_SIZE;
}

function showBlank(text, ...extra) {
  const size = estimateSize();
  state.frame = { ...size, url: null, blank: el("div", { className: "blank", dataset: { testid: "no-frame" } }, el("div", {}, el("p", {}, text), ...extra)) };
  render();
}

// ------------------------------------------------------------------ save / download
function problemsOf(detail) {
  if (Array.isArray(detail)) {
    return detail.map((d) => ({
      path: d.path ?? (Array.isArray(d.loc) ? d.loc.filter((p) => p !== "body").map((p, i) => (typeof p === "number" ? `[${p}]` : (i ? "." : "") + p)).join("") : ""),
      message: d.message ?? d.msg ?? JSON.stringify(d),
    }));
  }
  return [{ path: "", message: typeof detail === "string" ? detail : JSON.stringify(detail) }];
}

async function save() {
  if (state.draft) finishShape();
  $("#save-layout").disabled = true;
  const r = await request("/v1/layout", {
    method: "PUT", body: JSON.stringify(state.layout), headers: { "Content-Type": "application/json" }, what: "the layout",
  });
  $("#save-layout").disabled = false;
  if (r.ok) {
    state.layout = r.data;
    state.errors = [];
    message("Saved and applied: the cameras use it from their next frame.", "ok");
  } else if (r.status === 422) {
    state.errors = r.errors && r.errors.length ? r.errors : problemsOf(r.detail);
    message(`Not saved: ${state.errors.length} problem${state.errors.length > 1 ? "s" : ""} (shown on the shapes).`, "bad");
  } else {
    message(`Not saved. ${r.reason}`, "bad");
  }
  render();
}

async function downloadYaml() {
  const response = await fetch("/v1/layout?format=yaml", { headers: authHeaders(), cache: "no-store" });
  if (!response.ok) return message(`Download failed (${response.status}).`, "bad");
  const link = el("a", { href: URL.createObjectURL(await response.blob()), download: `${state.layout.store.id}.yaml` });
  document.body.append(link);
  link.click();
  link.remove();
  message("Downloaded the saved layout (unsaved changes are not in it).");
}

// ------------------------------------------------------------------ start
function selectCamera(id) {
  state.camera = id;
  state.selected = null;
  state.draft = null;
  render();
  loadFrame();
}

async function start() {
  wireSignOut();
  const r = await request("/v1/layout", { what: "the store layout" });
  if (!r.ok) {
    $("#status").textContent = "";
    document.body.dataset.denied = "true";
    view.replaceChildren(el("div", { className: "blank", dataset: { testid: "setup-denied" } },
      r.status === 403 ? "Setup needs an admin key: this key may not read or change the layout." : r.reason));
    view.classList.add("denied");
    $("#hint").hidden = true;
    document.querySelectorAll(".toolbar button, .toolbar select").forEach((b) => { b.disabled = true; });
    return;
  }
  state.layout = r.data;
  state.layout.zones = state.layout.zones || [];
  state.layout.lines = state.layout.lines || [];
  const select = $("#camera-select");
  select.replaceChildren(...state.layout.cameras.map((c) => el("option", { value: c.id }, c.id)));
  select.addEventListener("change", () => selectCamera(select.value));
  document.querySelectorAll("[data-draw]").forEach((b) => b.addEventListener("click", () => startDrawing(b.dataset.draw)));
  $("#finish-shape").addEventListener("click", finishShape);
  $("#cancel-shape").addEventListener("click", () => { state.draft = null; render(); });
  $("#undo").addEventListener("click", undo);
  $("#delete-shape").addEventListener("click", deleteSelected);
  $("#save-layout").addEventListener("click", save);
  $("#download-yaml").addEventListener("click", downloadYaml);
  $("#refresh-frame").addEventListener("click", loadFrame);
  $("#shape-id").addEventListener("change", () => {
    const shape = state.selected;
    const value = $("#shape-id").value.trim();
    if (!shape || state.draft || isCameraPolygon(shape.type) || !value) return;
    remember();
    const obj = shapeObject(shape);
    if (shape.type === "zone") {
      const old = obj.id;
      obj.id = value;
      // A shelf or display zone may be named elsewhere; the server reports any dangling name.
      if (old === value) state.history.pop();
    } else {
      obj.id = value;
    }
    render();
  });
  view.addEventListener("click", onViewClick);
  view.addEventListener("pointerdown", onPointerDown);
  view.addEventListener("pointermove", onPointerMove);
  view.addEventListener("pointerup", onPointerUp);
  document.addEventListener("keydown", (event) => {
    if (event.target.matches("input, select")) return;
    if (event.key === "Escape" && state.draft) { state.draft = null; render(); }
    else if (event.key === "Enter" && state.draft) finishShape();
    else if ((event.ctrlKey || event.metaKey) && event.key === "z") { event.preventDefault(); undo(); }
    else if ((event.key === "Delete" || event.key === "Backspace") && state.selected) deleteSelected();
  });
  window.addEventListener("resize", render);
  selectCamera(state.layout.cameras[0].id);
}

start();
