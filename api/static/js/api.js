// Talking to the StoreSense API: the API key (kept in localStorage), sign-in, JSON fetches.

const KEY_NAME = "storesenseKey";

/** The key from `#key=…` in the URL (then kept) or from localStorage. */
export function currentKey() {
  const fromHash = new URLSearchParams(location.hash.slice(1)).get("key");
  if (fromHash) {
    localStorage.setItem(KEY_NAME, fromHash);
    history.replaceState(null, "", location.pathname + location.search);
  }
  return localStorage.getItem(KEY_NAME);
}

export function signOut() {
  localStorage.removeItem(KEY_NAME);
  location.reload();
}

export function authHeaders(extra = {}) {
  const key = currentKey();
  return key ? { ...extra, "X-API-Key": key } : { ...extra };
}

let signInShown = false;

/** Ask for a key once (a 401 means keys are on and ours is missing or unknown). */
export function askForKey(reason) {
  if (signInShown) return;
  signInShown = true;
  const dialog = document.createElement("dialog");
  dialog.className = "sign-in";
  dialog.dataset.testid = "sign-in";
  dialog.innerHTML = `
    <form method="dialog">
      <h2>Sign in</h2>
      <p class="reason"></p>
      <label>API key <input name="key" type="password" autocomplete="off" required
        placeholder="ss_…" data-testid="sign-in-key"></label>
      <p class="muted">Kept in this browser only. Ask your admin for a display, analyst or admin key
        (<code>storesense keys create --scope analyst</code>).</p>
      <button type="submit" data-testid="sign-in-submit">Sign in</button>
    </form>`;
  dialog.querySelector(".reason").textContent = reason;
  dialog.querySelector("form").addEventListener("submit", () => {
    localStorage.setItem(KEY_NAME, dialog.querySelector("input").value.trim());
    location.reload();
  });
  document.body.append(dialog);
  dialog.showModal();
}

/** Why a response is not usable, as a sentence for the page. */
export function plainReason(status, what, detail) {
  if (status === 401) return `Sign in to see ${what}.`;
  if (status === 403) return `This key cannot see ${what}: ${scopeHint(detail)}`;
  if (status === 404) return `This server does not offer ${what} yet.`;
  if (status === 503) return `${capitalise(what)} unavailable: ${textOf(detail) || "the store is unreachable"}.`;
  return `${capitalise(what)} unavailable (${status}${detail ? ": " + textOf(detail) : ""}).`;
}

function scopeHint(detail) {
  const text = textOf(detail);
  const match = /needs '(\w+)'/.exec(text);
  return match ? `it needs a key with the ${match[1]} scope.` : "ask for a key with more scope.";
}

function textOf(detail) {
  if (!detail) return "";
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) return detail.map((d) => (d.path ? `${d.path}: ` : "") + (d.message || d.msg || "")).join("; ");
  return JSON.stringify(detail);
}

function capitalise(text) {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

/**
 * GET/PUT JSON. Resolves to {ok, status, data, detail, headers}; never throws for HTTP errors.
 * A 401 opens the sign-in dialog.
 */
export async function request(path, { method = "GET", body, headers = {}, what = path } = {}) {
  let response;
  try {
    response = await fetch(path, {
      method,
      cache: "no-store",
      headers: authHeaders({ Accept: "application/json", ...headers }),
      body,
    });
  } catch (err) {
    return { ok: false, status: 0, data: null, detail: "service unreachable", reason: "The service is unreachable." };
  }
  if (response.status === 304) return { ok: true, status: 304, data: null, headers: response.headers };
  const type = response.headers.get("content-type") || "";
  const payload = type.includes("json") ? await response.json().catch(() => null) : await response.text();
  if (response.ok) return { ok: true, status: response.status, data: payload, headers: response.headers };
  const detail = payload && typeof payload === "object" ? payload.detail : payload;
  if (response.status === 401) askForKey(textOf(detail) === "unknown API key" ? "That key is not known to this server." : "This server needs an API key.");
  const errors = payload && typeof payload === "object" && Array.isArray(payload.errors) ? payload.errors : [];
  return { ok: false, status: response.status, data: null, detail, errors, reason: plainReason(response.status, what, detail) };
}

/** Small DOM helper: el("td", {className: "num"}, "12"). */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (name === "dataset") Object.assign(node.dataset, value);
    else if (name in node) node[name] = value;
    else node.setAttribute(name, value);
  }
  node.append(...children.filter((c) => c !== null && c !== undefined).map((c) => (c instanceof Node ? c : String(c))));
  return node;
}

export function wireSignOut() {
  const button = document.getElementById("sign-out");
  if (!button) return;
  button.hidden = !currentKey();
  button.addEventListener("click", signOut);
}
