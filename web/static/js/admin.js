// The operator panel: polls the /admin JSON API and offers ban, unban and kick.
// Every value from the server is written with textContent: nicknames and rooms are chosen by strangers.

const POLL_MS = 2000;
const EVENTS_SHOWN = 200;
// Kept for this tab only, so that a reload does not ask again; closing the tab forgets it.
const KEY_STORE = "ghosttalk-admin-key";

const $ = (id) => document.getElementById(id);

// The key may come in the address (/admin#key=K, or /admin?key=K as the original had it). It is read once and
// taken out of the address bar at once, so that it stays in neither the history nor a bookmark; from then on
// it travels only in the X-Admin-Key header, which proxies do not write to their access logs.
function takeKeyFromAddress() {
  const url = new URL(window.location.href);
  const fragment = new URLSearchParams(url.hash.slice(1));
  const found = fragment.get("key") ?? url.searchParams.get("key");
  if (found === null) return null;
  fragment.delete("key");
  url.searchParams.delete("key");
  url.hash = fragment.toString();
  window.history.replaceState(window.history.state, "", url.href);
  return found;
}

function storedKey() {
  try {
    return window.sessionStorage.getItem(KEY_STORE);
  } catch {
    return null; // storage disabled: the key lives as long as the page
  }
}

function storeKey(value) {
  try {
    if (value) window.sessionStorage.setItem(KEY_STORE, value);
    else window.sessionStorage.removeItem(KEY_STORE);
  } catch {
    // As above: without storage a reload asks for the key again.
  }
}

// A proxy that injects X-Admin-Key itself works too: with no key here the first call shows whether it does.
let key = takeKeyFromAddress() ?? storedKey();

class ApiError extends Error {
  constructor(status, message, retryAfter = null) {
    super(message);
    this.status = status;
    this.retryAfter = retryAfter;
  }
}

async function api(action, { method = "GET", params = {} } = {}) {
  const query = new URLSearchParams({ action, ...params });
  const headers = key ? { "X-Admin-Key": key } : {};
  const response = await fetch(`/admin?${query}`, { method, headers, cache: "no-store" });
  let body = null;
  try {
    body = await response.json();
  } catch {
    // A proxy error page is not JSON; the status line below still says what happened.
  }
  if (!response.ok) {
    const message = body && typeof body.error === "string" ? body.error : `HTTP ${response.status}`;
    throw new ApiError(response.status, message, response.headers.get("Retry-After"));
  }
  return body;
}

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

function button(label, dataset, className) {
  const node = el("button", label, className);
  node.type = "button";
  Object.assign(node.dataset, dataset);
  return node;
}

function duration(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const parts = [];
  const days = Math.floor(s / 86400);
  const hours = Math.floor((s % 86400) / 3600);
  const minutes = Math.floor((s % 3600) / 60);
  if (days) parts.push(`${days}d`);
  if (days || hours) parts.push(`${hours}h`);
  if (days || hours || minutes) parts.push(`${minutes}m`);
  parts.push(`${s % 60}s`);
  return parts.join(" ");
}

function since(unixSeconds) {
  return typeof unixSeconds === "number" ? duration(Date.now() / 1000 - unixSeconds) : "";
}

function clockTime(iso) {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? String(iso) : date.toLocaleTimeString();
}

function setMessage(text, isError = false) {
  const node = $("message");
  node.textContent = text;
  node.classList.toggle("error", isError);
}

function renderStats(stats) {
  const types = Object.entries(stats.candidate_types || {})
    .map(([type, count]) => `${type} ${count}`)
    .join(", ");
  const rows = [
    ["Rooms", stats.rooms],
    ["People", stats.users],
    ["Connections", types || "none"],
    ["Bans", stats.bans],
    ["Uptime", duration(stats.uptime)],
    ["Version", `${stats.version} (${stats.commit})`],
  ];
  if (stats.shutting_down) rows.push(["State", "shutting down"]);
  const list = $("stats");
  list.replaceChildren();
  for (const [name, value] of rows) {
    const item = el("div");
    item.append(el("dt", name), el("dd", value));
    list.append(item);
  }
}

function peerRow(peer) {
  const row = el("tr");
  row.dataset.peer = peer.id;
  row.append(
    el("td", peer.name, "name"),
    el("td", peer.id, "mono"),
    el("td", peer.ip, "mono"),
    el("td", peer.muted ? "muted" : "speaking"),
    el("td", peer.candidate_type || "connecting"),
    el("td", since(peer.joined_at)),
  );
  const actions = el("td", null, "actions");
  actions.append(button("Kick", { action: "kick", peer: peer.id }));
  if (peer.ip) {
    actions.append(button("Ban address", { action: "ban", ip: peer.ip }, "danger"));
    // One person holds a whole IPv6 /64 and can hop between its addresses; for IPv4 a /24 is the usual
    // block of a provider's pool. The server masks the address to the network.
    const prefix = peer.ip.includes(":") ? 64 : 24;
    actions.append(button(`Ban /${prefix}`, { action: "ban", ip: `${peer.ip}/${prefix}` }, "danger"));
  }
  row.append(actions);
  return row;
}

function renderRooms(rooms) {
  $("rooms-empty").hidden = rooms.length > 0;
  const container = $("rooms");
  container.replaceChildren();
  const sorted = [...rooms].sort((a, b) => a.room.localeCompare(b.room));
  for (const room of sorted) {
    const article = el("article", null, "room");
    article.dataset.room = room.room;
    const count = room.peers.length === 1 ? "1 person" : `${room.peers.length} people`;
    article.append(el("h3", `${room.room} · ${count} · open ${since(room.created_at)}`));
    const table = el("table", null, "peers");
    const head = el("tr");
    for (const title of ["Name", "Id", "Address", "Mic", "Connection", "Joined", ""]) head.append(el("th", title));
    table.append(el("thead"), el("tbody"));
    table.tHead.append(head);
    for (const peer of room.peers) table.tBodies[0].append(peerRow(peer));
    article.append(table);
    container.append(article);
  }
}

function renderBans(bans) {
  $("bans-empty").hidden = bans.length > 0;
  const list = $("bans");
  list.replaceChildren();
  for (const entry of bans) {
    const item = el("li");
    item.dataset.entry = entry;
    item.append(el("span", entry, "mono"), button("Unban", { action: "unban", ip: entry }));
    list.append(item);
  }
}

function renderEvents(events) {
  const body = $("events");
  body.replaceChildren();
  for (const event of [...events].reverse()) {
    const row = el("tr", null, `level-${event.level}`);
    const details = event.details && Object.keys(event.details).length ? JSON.stringify(event.details) : "";
    row.append(
      el("td", clockTime(event.ts)),
      el("td", event.level),
      el("td", event.event),
      el("td", event.room),
      el("td", event.peer, "mono"),
      el("td", event.ip, "mono"),
      el("td", details, "details"),
    );
    body.append(row);
  }
}

// Redrawing only what changed keeps a button in place between the operator's mouse-down and mouse-up.
const lastDrawn = new Map();
function draw(part, data, render) {
  const text = JSON.stringify(data);
  if (lastDrawn.get(part) === text) return;
  lastDrawn.set(part, text);
  render(data);
}

let stopped = true;

async function refresh() {
  const [stats, rooms, bans, logs] = await Promise.all([
    api("stats"),
    api("rooms"),
    api("bans"),
    api("logs", { params: { n: String(EVENTS_SHOWN) } }),
  ]);
  // Uptime changes every poll; redraw the stats but not the tables unless their data moved.
  renderStats(stats);
  draw("rooms", rooms.rooms, renderRooms);
  draw("bans", bans.bans, renderBans);
  draw("events", logs.events, renderEvents);
  $("status").textContent = `Updated ${new Date().toLocaleTimeString()}`;
  $("status").classList.remove("error");
}

function showLogin(text) {
  stopped = true;
  $("panel").hidden = true;
  $("login").hidden = false;
  $("login-message").textContent = text;
  $("status").textContent = "Not signed in";
  $("status").classList.remove("error");
  $("login-key").focus();
}

function showFailure(error) {
  if (error instanceof ApiError && error.status === 401) {
    key = null;
    storeKey(null);
    showLogin("Wrong or missing admin key.");
    return;
  }
  const status = $("status");
  status.classList.add("error");
  if (error instanceof ApiError && error.status === 429) {
    status.textContent = `Locked out after too many wrong keys; try again in ${error.retryAfter || "a few"} s`;
  } else {
    status.textContent = `Cannot reach the server: ${error.message}`;
  }
}

async function poll() {
  if (stopped) return;
  if (!document.hidden) {
    try {
      await refresh();
    } catch (error) {
      showFailure(error);
    }
  }
  if (!stopped) schedulePoll();
}

// One pending poll at most, however often start() runs (a key typed again, or pasted into the address).
let pollTimer = null;
function schedulePoll() {
  clearTimeout(pollTimer);
  pollTimer = setTimeout(poll, POLL_MS);
}

// Opens the panel with the key in hand. One call checks the key first: a wrong one then costs one attempt of
// the few the server allows an address, not one per call that a refresh makes.
async function start() {
  try {
    await api("bans");
    await refresh();
  } catch (error) {
    if (error instanceof ApiError && error.status === 429) {
      showLogin(`Too many wrong keys from your address; try again in ${error.retryAfter || "a few"} s.`);
    } else if (error instanceof ApiError && error.status === 401) {
      if (key) showFailure(error);
      else showLogin(""); // no key here and no proxy adding one: ask for it
    } else {
      showLogin(`Cannot reach the server: ${error.message}`);
    }
    return;
  }
  storeKey(key);
  $("login").hidden = true;
  $("panel").hidden = false;
  stopped = false;
  schedulePoll();
}

function onLoginSubmit(event) {
  event.preventDefault();
  const input = $("login-key");
  if (!input.value) return;
  key = input.value;
  input.value = "";
  start();
}

async function act(action, params, done) {
  try {
    const result = await api(action, { method: "POST", params });
    setMessage(done(result));
    await refresh();
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) showFailure(error);
    setMessage(error.message, true);
  }
}

const actions = {
  kick: (data) => act("kick", { peer: data.peer }, (r) => `Kicked ${r.kicked}.`),
  ban: (data) =>
    act("ban", { ip: data.ip }, (r) => `Banned ${r.banned}; ${r.disconnected} connection(s) closed.`),
  unban: (data) => act("unban", { ip: data.ip }, (r) => `Unbanned ${r.unbanned}.`),
};

function onClick(event) {
  const target = event.target instanceof Element ? event.target.closest("button[data-action]") : null;
  if (!target) return;
  const handler = actions[target.dataset.action];
  if (!handler) return;
  target.disabled = true;
  handler(target.dataset).finally(() => {
    target.disabled = false;
  });
}

function onBanSubmit(event) {
  event.preventDefault();
  const input = $("ban-ip");
  const ip = input.value.trim();
  if (!ip) return;
  actions.ban({ ip }).then(() => {
    if (!$("message").classList.contains("error")) input.value = "";
  });
}

document.addEventListener("click", onClick);
$("ban-form").addEventListener("submit", onBanSubmit);
$("login-form").addEventListener("submit", onLoginSubmit);
// /admin#key=K pasted over an open panel changes only the fragment: the page is not loaded again.
window.addEventListener("hashchange", () => {
  const found = takeKeyFromAddress();
  if (found === null) return;
  key = found;
  start();
});
document.addEventListener("visibilitychange", () => {
  if (!document.hidden && !stopped) refresh().catch(showFailure);
});
start();
