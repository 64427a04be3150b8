// @ts-check
// The operator panel: polls the /admin JSON API and offers ban, unban and kick, in the language the other
// pages use (admin-view.js draws what the API answers).

import { AdminApi, ApiError, storedKey, storeKey, takeKeyFromAddress } from './admin-api.js';
import { clustered, renderNodes, renderUnreachable } from './admin-nodes.js';
import { clock, renderBans, renderEvents, renderRooms, renderStats, shownOf, tickDurations } from './admin-view.js';
import { byId } from './dom.js';
import { bindLanguageSelect, onLanguageChange, setText } from './i18n.js';

/** @typedef {import('./admin-view.js').AdminRoom} AdminRoom */
/** @typedef {import('./admin-view.js').Stats} Stats */
/** @typedef {import('./admin-view.js').LogEvent} LogEvent */

const POLL_MS = 2000;
const EVENTS_SHOWN = 200;

const $ = byId;

const admin = new AdminApi(takeKeyFromAddress() ?? storedKey());

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

/**
 * @typedef {{ stats: Stats, rooms: AdminRoom[], unreachable: string[], bans: string[], logs: LogEvent[] }} Answers
 * unreachable: the nodes whose rooms are missing (a cluster's only)
 */
/** @type {Answers | null} what the panel shows, kept to draw it again in another language */
let latest = null;

/** @param {Answers} answers */
function render(answers) {
  // Uptime changes every poll; redraw the stats but not the tables unless their data moved. How long each
  // person has been in or waited is written anew in place.
  renderStats(answers.stats);
  renderNodes(answers.stats);
  // Drawn together: a partial list must not say that no one is here.
  draw('rooms', { rooms: shownOf(answers.rooms), unreachable: answers.unreachable }, ({ rooms, unreachable }) => {
    renderRooms(rooms);
    renderUnreachable(unreachable);
  });
  tickDurations();
  draw('bans', answers.bans, renderBans);
  draw('events', { logs: answers.logs, inCluster: clustered(answers.stats) }, (shown) =>
    renderEvents(shown.logs, shown.inCluster),
  );
}

async function refresh() {
  const answers = await Promise.all([
    admin.call('stats'),
    admin.call('rooms'),
    admin.call('bans'),
    admin.call('logs', { params: { n: String(EVENTS_SHOWN) } }),
  ]);
  const [stats, rooms, bans, logs] =
    /** @type {[Stats, { rooms: AdminRoom[], unreachable?: string[] }, { bans: string[] }, LogEvent[]]} */ (answers);
  latest = { stats, rooms: rooms.rooms, unreachable: rooms.unreachable ?? [], bans: bans.bans, logs };
  render(latest);
  setText($('status'), 'admin_updated', { time: clock(new Date()) });
  $('status').classList.remove('error');
}

/** @typedef {{ key: string, vars?: Record<string, unknown> }} Said a string to show, and its values */

/** @param {Said | null} said what to tell on the form */
function showLogin(said) {
  stopped = true;
  $('panel').hidden = true;
  $('login').hidden = false;
  const message = $('login-message');
  if (said) setText(message, said.key, said.vars);
  else message.textContent = '';
  setText($('status'), 'admin_not_signed_in');
  $('status').classList.remove('error');
  $('login-key').focus();
}

/**
 * @param {ApiError} error a 429 answer
 * @returns {Said}
 */
function lockedOut(error) {
  const seconds = Number(error.retryAfter);
  if (Number.isFinite(seconds) && seconds > 0) return { key: 'admin_locked_out', vars: { seconds } };
  return { key: 'admin_locked_out_later' };
}

/** @param {unknown} error */
function showFailure(error) {
  if (error instanceof ApiError && error.status === 401) {
    admin.key = null;
    storeKey(null);
    showLogin({ key: 'admin_wrong_key' });
    return;
  }
  const status = $('status');
  status.classList.add('error');
  if (error instanceof ApiError && error.status === 429) {
    const lockout = lockedOut(error);
    setText(status, lockout.key, lockout.vars);
  } else {
    setText(status, 'admin_unreachable', { reason: messageOf(error) });
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
    await admin.call('bans');
    await refresh();
  } catch (error) {
    if (error instanceof ApiError && error.status === 429) {
      showLogin(lockedOut(error));
    } else if (error instanceof ApiError && error.status === 401) {
      if (admin.key) showFailure(error);
      else showLogin(null); // no key here and no proxy adding one: ask for it
    } else {
      showLogin({ key: 'admin_unreachable', vars: { reason: messageOf(error) } });
    }
    return;
  }
  storeKey(admin.key);
  $('login').hidden = true;
  $('panel').hidden = false;
  stopped = false;
  schedulePoll();
}

/** @param {SubmitEvent} event */
function onLoginSubmit(event) {
  event.preventDefault();
  const input = $('login-key', HTMLInputElement);
  if (!input.value) return;
  admin.key = input.value;
  input.value = '';
  void start();
}

/**
 * Runs an action and says how it went (through #message, which a language switch translates again); never
 * rejects.
 * @param {string} action
 * @param {Record<string, string>} params
 * @param {(result: Record<string, unknown>) => void} done says that it worked
 */
async function act(action, params, done) {
  const message = $('message');
  try {
    const result = /** @type {Record<string, unknown>} */ (await admin.call(action, { method: 'POST', params }));
    message.classList.remove('error');
    done(result);
    await refresh();
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) showFailure(error);
    message.classList.add('error');
    // The server's reason (an address it could not read, say) is its own English text, quoted as it came.
    if (error instanceof ApiError) setText(message, 'admin_refused', { reason: error.message });
    else setText(message, 'admin_unreachable', { reason: messageOf(error) });
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
const said = (value) => (typeof value === 'string' || typeof value === 'number' ? String(value) : '');

/** @type {Record<string, (data: DOMStringMap) => Promise<void>>} */
const actions = {
  kick: (data) =>
    act('kick', { peer: data.peer ?? '' }, (r) => setText($('message'), 'admin_kicked', { peer: said(r.kicked) })),
  ban: (data) =>
    act('ban', { ip: data.ip ?? '' }, (r) =>
      setText($('message'), 'admin_banned', { ip: said(r.banned), count: said(r.disconnected) }),
    ),
  unban: (data) =>
    act('unban', { ip: data.ip ?? '' }, (r) => setText($('message'), 'admin_unbanned', { ip: said(r.unbanned) })),
};

/** @param {MouseEvent} event */
function onClick(event) {
  const target = event.target instanceof Element ? event.target.closest('button[data-action]') : null;
  if (!(target instanceof HTMLButtonElement)) return;
  const handler = Object.hasOwn(actions, target.dataset.action ?? '') ? actions[target.dataset.action ?? ''] : null;
  if (!handler) return;
  target.disabled = true;
  void handler(target.dataset).finally(() => {
    target.disabled = false;
  });
}

/** @param {SubmitEvent} event */
function onBanSubmit(event) {
  event.preventDefault();
  const input = $('ban-ip', HTMLInputElement);
  const ip = input.value.trim();
  if (!ip) return;
  void actions.ban({ ip }).then(() => {
    if (!$('message').classList.contains('error')) input.value = '';
  });
}

// The markup and the status lines follow a language switch by themselves (data-i18n); the tables are drawn
// again from the last answers.
onLanguageChange(() => {
  lastDrawn.clear();
  if (latest) render(latest);
});

document.addEventListener('click', onClick);
$('ban-form').addEventListener('submit', onBanSubmit);
$('login-form').addEventListener('submit', onLoginSubmit);
// /admin#key=K pasted over an open panel changes only the fragment: the page is not loaded again.
window.addEventListener('hashchange', () => {
  const found = takeKeyFromAddress();
  if (found === null) return;
  admin.key = found;
  void start();
});
document.addEventListener('visibilitychange', () => {
  if (!document.hidden && !stopped) refresh().catch(showFailure);
});
// The language first, so that the panel's first words are already in it.
void bindLanguageSelect($('lang-select', HTMLSelectElement)).then(start);
