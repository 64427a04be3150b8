// @ts-check
// The operator panel: polls the /admin JSON API and offers ban, unban and kick.
// Every value from the server is written with textContent: nicknames and rooms are chosen by strangers.

import { AdminApi, ApiError, storedKey, storeKey, takeKeyFromAddress } from "./admin-api.js";
import { byId, el } from "./dom.js";

// The /admin API's answers, as far as the panel reads them.
/**
 * @typedef {object} AdminPeer
 * @property {string} id
 * @property {string} name
 * @property {string} ip
 * @property {boolean} muted
 * @property {string | null} candidate_type
 * @property {number} joined_at unix seconds
 */
/** @typedef {{ room: string, created_at: number, peers: AdminPeer[] }} AdminRoom */
/**
 * @typedef {object} Stats
 * @property {number} rooms
 * @property {number} users
 * @property {number} bans
 * @property {number} uptime seconds
 * @property {string} version
 * @property {string} commit
 * @property {Record<string, number>} [candidate_types] how many people connected each way
 * @property {boolean} [shutting_down]
 */
/**
 * @typedef {object} LogEvent
 * @property {string} ts ISO 8601
 * @property {string} level
 * @property {string} event
 * @property {string | null} room
 * @property {string | null} peer
 * @property {string | null} ip
 * @property {Record<string, unknown> | null} details
 */

const POLL_MS = 2000;
const EVENTS_SHOWN = 200;

const $ = byId;

const admin = new AdminApi(takeKeyFromAddress() ?? storedKey());

/**
 * @param {string} label
 * @param {Record<string, string>} dataset
 * @param {string} [className]
 */
function button(label, dataset, className) {
  const node = el("button", label, className);
  node.type = "button";
  Object.assign(node.dataset, dataset);
  return node;
}

/** @param {number} seconds */
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

/** @param {unknown} unixSeconds */
function since(unixSeconds) {
  return typeof unixSeconds === "number" ? duration(Date.now() / 1000 - unixSeconds) : "";
}

/** @param {string} iso */
function clockTime(iso) {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? String(iso) : date.toLocaleTimeString();
}

/**
 * @param {string} text
 * @param {boolean} [isError]
 */
function setMessage(text, isError = false) {
  const node = $("message");
  node.textContent = text;
  node.classList.toggle("error", isError);
}

/** @param {Stats} stats */
function renderStats(stats) {
  const types = Object.entries(stats.candidate_types || {})
    .map(([type, count]) => `${type} ${count}`)
    .join(", ");
  /** @type {[string, string | number][]} */
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

/** @param {AdminPeer} peer */
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

/** @param {AdminRoom[]} rooms */
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
    table.tHead?.append(head);
    for (const peer of room.peers) table.tBodies[0].append(peerRow(peer));
    article.append(table);
    container.append(article);
  }
}

/** @param {string[]} bans addresses and networks */
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

/** @param {LogEvent[]} events oldest first */
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
/** @type {Map<string, string>} */
const lastDrawn = new Map();
/**
 * @template T
 * @param {string} part
 * @param {T} data
 * @param {(data: T) => void} render
 */
function draw(part, data, render) {
  const text = JSON.stringify(data);
  if (lastDrawn.get(part) === text) return;
  lastDrawn.set(part, text);
  render(data);
}

let stopped = true;

async function refresh() {
  const answers = await Promise.all([
    admin.call("stats"),
    admin.call("rooms"),
    admin.call("bans"),
    admin.call("logs", { params: { n: String(EVENTS_SHOWN) } }),
  ]);
  const [stats, rooms, bans, logs] = /** @type {[Stats, { rooms: AdminRoom[] }, { bans: string[] }, LogEvent[]]} */ (
    answers
  );
  // Uptime changes every poll; redraw the stats but not the tables unless their data moved.
  renderStats(stats);
  draw("rooms", rooms.rooms, renderRooms);
  draw("bans", bans.bans, renderBans);
  draw("events", logs, renderEvents);
  $("status").textContent = `Updated ${new Date().toLocaleTimeString()}`;
  $("status").classList.remove("error");
}

/** @param {string} text */
function showLogin(text) {
  stopped = true;
  $("panel").hidden = true;
  $("login").hidden = false;
  $("login-message").textContent = text;
  $("status").textContent = "Not signed in";
  $("status").classList.remove("error");
  $("login-key").focus();
}

/** @param {unknown} error */
function showFailure(error) {
  if (error instanceof ApiError && error.status === 401) {
    admin.key = null;
    storeKey(null);
    showLogin("Wrong or missing admin key.");
    return;
  }
  const status = $("status");
  status.classList.add("error");
  if (error instanceof ApiError && error.status === 429) {
    status.textContent = `Locked out after too many wrong keys; try again in ${error.retryAfter || "a few"} s`;
  } else {
    status.textContent = `Cannot reach the server: ${messageOf(error)}`;
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
let pollTimer = 0;
function schedulePoll() {
  window.clearTimeout(pollTimer);
  pollTimer = window.setTimeout(() => void poll(), POLL_MS);
}

// Opens the panel with the key in hand. One call checks the key first: a wrong one then costs one attempt of
// the few the server allows an address, not one per call that a refresh makes. Never rejects.
async function start() {
  try {
    await admin.call("bans");
    await refresh();
  } catch (error) {
    if (error instanceof ApiError && error.status === 429) {
      showLogin(`Too many wrong keys from your address; try again in ${error.retryAfter || "a few"} s.`);
    } else if (error instanceof ApiError && error.status === 401) {
      if (admin.key) showFailure(error);
      else showLogin(""); // no key here and no proxy adding one: ask for it
    } else {
      showLogin(`Cannot reach the server: ${messageOf(error)}`);
    }
    return;
  }
  storeKey(admin.key);
  $("login").hidden = true;
  $("panel").hidden = false;
  stopped = false;
  schedulePoll();
}

/** @param {SubmitEvent} event */
function onLoginSubmit(event) {
  event.preventDefault();
  const input = $("login-key", HTMLInputElement);
  if (!input.value) return;
  admin.key = input.value;
  input.value = "";
  void start();
}

/**
 * Runs an action and says how it went; never rejects.
 * @param {string} action
 * @param {Record<string, string>} params
 * @param {(result: Record<string, unknown>) => string} done what to say when it worked
 */
async function act(action, params, done) {
  try {
    const result = /** @type {Record<string, unknown>} */ (await admin.call(action, { method: "POST", params }));
    setMessage(done(result));
    await refresh();
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) showFailure(error);
    setMessage(messageOf(error), true);
  }
}

/**
 * @param {unknown} error
 * @returns {string}
 */
function messageOf(error) {
  return error instanceof Error ? error.message : String(error);
}

/** @param {unknown} value what the server answered, shown as it is */
const said = (value) => (typeof value === "string" || typeof value === "number" ? String(value) : "");

/** @type {Record<string, (data: DOMStringMap) => Promise<void>>} */
const actions = {
  kick: (data) => act("kick", { peer: data.peer ?? "" }, (r) => `Kicked ${said(r.kicked)}.`),
  ban: (data) =>
    act("ban", { ip: data.ip ?? "" }, (r) => `Banned ${said(r.banned)}; ${said(r.disconnected)} connection(s) closed.`),
  unban: (data) => act("unban", { ip: data.ip ?? "" }, (r) => `Unbanned ${said(r.unbanned)}.`),
};

/** @param {MouseEvent} event */
function onClick(event) {
  const target = event.target instanceof Element ? event.target.closest("button[data-action]") : null;
  if (!(target instanceof HTMLButtonElement)) return;
  const handler = Object.hasOwn(actions, target.dataset.action ?? "") ? actions[target.dataset.action ?? ""] : null;
  if (!handler) return;
  target.disabled = true;
  void handler(target.dataset).finally(() => {
    target.disabled = false;
  });
}

/** @param {SubmitEvent} event */
function onBanSubmit(event) {
  event.preventDefault();
  const input = $("ban-ip", HTMLInputElement);
  const ip = input.value.trim();
  if (!ip) return;
  void actions.ban({ ip }).then(() => {
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
  admin.key = found;
  void start();
});
document.addEventListener("visibilitychange", () => {
  if (!document.hidden && !stopped) refresh().catch(showFailure);
});
void start();
