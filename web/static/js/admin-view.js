// @ts-check
// What the operator panel draws from the /admin API's answers, in the page's language.
// Every value from the server is written with textContent: nicknames and rooms are chosen by strangers.

import { clusterStatRows, roomNode } from './admin-nodes.js';
import { byId, el } from './dom.js';
import { t } from './i18n.js';

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
/** @typedef {{ id: string, name: string, ip: string, since: number }} Waiting someone in a locked room's lobby */
/**
 * @typedef {object} AdminRoom
 * @property {string} room
 * @property {number} created_at unix seconds
 * @property {boolean} encrypted
 * @property {AdminPeer[]} peers
 * @property {string | null} host the host's peer id
 * @property {boolean} locked newcomers wait in the lobby until the host lets them in
 * @property {Waiting[]} lobby
 * @property {string} [node] the node that holds it, in a cluster
 */
/**
 * @typedef {object} BaseStats
 * @property {number} rooms
 * @property {number} users
 * @property {number} bans
 * @property {number} uptime seconds
 * @property {string} version
 * @property {string} commit
 * @property {Record<string, number>} [candidate_types] how many people connected each way
 * @property {boolean} [shutting_down]
 */
/** @typedef {BaseStats & import('./admin-nodes.js').ClusterStats} Stats */
/**
 * @typedef {object} LogEvent
 * @property {string} ts ISO 8601
 * @property {string} level
 * @property {string} event
 * @property {string | null} room
 * @property {string | null} peer
 * @property {string | null} ip
 * @property {Record<string, unknown> | null} details
 * @property {string} [node] where it happened, in a cluster
 */

/**
 * @param {string} label
 * @param {Record<string, string>} dataset what the click handler reads
 * @param {string} [className]
 */
function button(label, dataset, className) {
  const node = el('button', label, className);
  node.type = 'button';
  Object.assign(node.dataset, dataset);
  return node;
}

/** @param {number} seconds */
function duration(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const days = Math.floor(s / 86400);
  const hours = Math.floor((s % 86400) / 3600);
  const minutes = Math.floor((s % 3600) / 60);
  const parts = [];
  if (days) parts.push(t('admin_days', { n: days }));
  if (days || hours) parts.push(t('admin_hours', { n: hours }));
  if (days || hours || minutes) parts.push(t('admin_minutes', { n: minutes }));
  parts.push(t('admin_seconds', { n: s % 60 }));
  return parts.join(' ');
}

/** @param {unknown} unixSeconds */
function since(unixSeconds) {
  return typeof unixSeconds === 'number' ? duration(Date.now() / 1000 - unixSeconds) : '';
}

/**
 * A time since `unixSeconds` that tickDurations() keeps current: the tables are not drawn again while their
 * data stays the same, yet a wait in the lobby (which ends after a few minutes) has to read true.
 * @param {HTMLElement} node
 * @param {number} unixSeconds
 * @param {{ key: string }} [within] a string that holds the duration as {time}
 */
function keepSince(node, unixSeconds, within) {
  node.dataset.since = String(unixSeconds);
  if (within) node.dataset.sinceKey = within.key;
  writeSince(node);
  return node;
}

/** @param {HTMLElement} node */
function writeSince(node) {
  const time = since(Number(node.dataset.since));
  node.textContent = node.dataset.sinceKey ? t(node.dataset.sinceKey, { time }) : time;
}

/** Writes every shown duration anew, in place: no button is replaced, so no click is lost to it. */
export function tickDurations() {
  for (const node of byId('rooms').querySelectorAll('[data-since]')) {
    if (node instanceof HTMLElement) writeSince(node);
  }
}

/** A clock time written the way the page's language writes it. @param {Date} date */
export function clock(date) {
  return date.toLocaleTimeString(document.documentElement.lang || undefined);
}

/** @param {string} iso */
function clockTime(iso) {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? String(iso) : clock(date);
}

/** @param {Stats} stats */
export function renderStats(stats) {
  // ICE candidate types (host, srflx, relay) are the protocol's own names, as the server's log writes them.
  const types = Object.entries(stats.candidate_types || {})
    .map(([type, count]) => `${type} ${count}`)
    .join(', ');
  /** @type {[string, string | number, string?][]} name, value, and the value's class */
  const rows = [
    [t('admin_rooms'), stats.rooms],
    [t('admin_people'), stats.users],
    [t('admin_connections'), types || t('admin_connections_none')],
    [t('admin_bans'), stats.bans],
    [t('admin_uptime'), duration(stats.uptime)],
    // A version and a commit hash are identifiers, not words: shown as the ids and addresses are.
    [t('admin_version'), `${stats.version} (${stats.commit})`, 'mono'],
  ];
  if (stats.shutting_down) rows.push([t('admin_state'), t('admin_shutting_down')]);
  rows.push(...clusterStatRows(stats));
  const list = byId('stats');
  list.replaceChildren();
  for (const [name, value, kind] of rows) {
    const item = el('div');
    item.append(el('dt', name), el('dd', value, kind));
    list.append(item);
  }
}

// The peers table's column names, in table order.
function columnNames() {
  return {
    name: t('admin_col_name'),
    id: t('admin_col_id'),
    address: t('admin_col_address'),
    mic: t('admin_col_mic'),
    connection: t('admin_col_connection'),
    joined: t('admin_col_joined'),
    actions: t('admin_col_actions'),
  };
}

// Each cell carries its column's name too: the stacked phone layout, which hides the table head, shows it
// next to the value.
/**
 * @param {string} label
 * @param {string | null} text
 * @param {string} [className]
 */
function cell(label, text, className) {
  const node = el('td', text, className);
  node.dataset.label = label;
  return node;
}

// A crown, drawn by the style sheet as the padlock is; the word beside it is what screen readers read.
function crown() {
  const icon = el('span', null, 'crown');
  icon.setAttribute('aria-hidden', 'true');
  return icon;
}

/**
 * The name cell; the host's also says "Host", after the name so that the name stays the cell's first text.
 * @param {string} label
 * @param {string} name
 * @param {boolean} hosts
 */
function nameCell(label, name, hosts) {
  const node = cell(label, name, 'name');
  if (hosts) {
    const mark = el('span', null, 'host-mark');
    mark.append(crown(), t('admin_host'));
    node.append(' ', mark);
  }
  return node;
}

/**
 * The Kick and Ban buttons of someone in the room or in its lobby.
 * @param {string} label the column's name
 * @param {string} id
 * @param {string} ip
 */
function actionsCell(label, id, ip) {
  const actions = cell(label, null, 'actions');
  actions.append(button(t('admin_kick'), { action: 'kick', peer: id }));
  if (ip) {
    actions.append(button(t('admin_ban_address'), { action: 'ban', ip }, 'danger'));
    // One person holds a whole IPv6 /64 and can hop between its addresses; for IPv4 a /24 is the usual
    // block of a provider's pool. The server masks the address to the network.
    const prefix = ip.includes(':') ? 64 : 24;
    actions.append(button(t('admin_ban_prefix', { prefix }), { action: 'ban', ip: `${ip}/${prefix}` }, 'danger'));
  }
  return actions;
}

/**
 * @param {AdminPeer} peer
 * @param {boolean} hosts
 * @param {ReturnType<typeof columnNames>} names
 */
function peerRow(peer, hosts, names) {
  const row = el('tr');
  row.dataset.peer = peer.id;
  // The server knows whether the microphone is muted, not whether the person is speaking right now (it
  // counts audio-level packets but does not report their levels), so the panel claims no more than that.
  const mic = peer.muted ? t('admin_mic_muted') : t('admin_mic_on');
  row.append(
    nameCell(names.name, peer.name, hosts),
    cell(names.id, peer.id, 'mono'),
    cell(names.address, peer.ip, 'mono'),
    cell(names.mic, mic, peer.muted ? 'mic muted' : 'mic'),
    cell(names.connection, peer.candidate_type || t('admin_connecting')),
    keepSince(cell(names.joined, null), peer.joined_at),
    actionsCell(names.actions, peer.id, peer.ip),
  );
  return row;
}

/**
 * A table under the column names `names`. The last, the buttons' column, needs no visible title; a screen
 * reader still names it.
 * @param {string} className
 * @param {string[]} names
 */
function table(className, names) {
  const node = el('table', null, className);
  const head = el('tr');
  for (const name of names) head.append(el('th', name));
  head.lastElementChild?.replaceChildren(el('span', names[names.length - 1], 'sr-only'));
  node.append(el('thead'), el('tbody'));
  node.tHead?.append(head);
  return node;
}

/**
 * Who waits at a locked room's door, for the operator to turn away (the same Kick) or ban.
 * @param {AdminRoom} room
 * @param {ReturnType<typeof columnNames>} names
 */
function lobbyPart(room, names) {
  const part = el('div', null, 'lobby');
  const titleId = `lobby-${room.room}`;
  const title = el('h4', t('admin_lobby'));
  title.id = titleId;
  const waited = t('admin_col_waited');
  const list = table('peers waiting', [names.name, names.address, waited, names.actions]);
  list.setAttribute('aria-labelledby', titleId);
  for (const knock of room.lobby) {
    const row = el('tr');
    row.dataset.waiting = knock.id;
    row.append(
      cell(names.name, knock.name, 'name'),
      cell(names.address, knock.ip, 'mono'),
      keepSince(cell(waited, null), knock.since),
      actionsCell(names.actions, knock.id, knock.ip),
    );
    list.tBodies[0].append(row);
  }
  part.append(title, list);
  return part;
}

// A padlock, closed or open, drawn by the style sheet rather than an emoji, which not every system has a font
// for. The badge's words say the same, so screen readers skip it.
/** @param {boolean} closed */
function padlock(closed) {
  const icon = el('span', null, closed ? 'padlock' : 'padlock open');
  icon.setAttribute('aria-hidden', 'true');
  return icon;
}

/** @param {AdminRoom} room */
function roomHeading(room) {
  const heading = el('h3');
  const people = room.peers.length;
  const count = people === 1 ? t('admin_one_person') : t('admin_people_count', { count: people });
  const open = keepSince(el('span'), room.created_at, { key: 'admin_open_for' });
  heading.append(el('span', room.room, 'room-name'), ` · ${count} · `, open, ' ');
  const badge = el('span', null, room.encrypted ? 'badge encrypted' : 'badge');
  badge.append(padlock(room.encrypted), room.encrypted ? t('admin_encrypted') : t('admin_not_encrypted'));
  heading.append(badge);
  if (room.locked) heading.append(' ', el('span', t('admin_locked'), 'badge locked'));
  const node = roomNode(room.node);
  if (node) heading.append(' ', node);
  return heading;
}

/**
 * What the panel shows of the rooms, and nothing more: compared between polls to decide on a redraw, which
 * the server's counters (audio levels read, loudness) would otherwise force every time someone talks.
 * @param {AdminRoom[]} rooms
 * @returns {AdminRoom[]}
 */
export function shownOf(rooms) {
  return rooms.map(({ room, created_at, encrypted, peers, host, locked, lobby, node }) => ({
    room,
    node,
    created_at,
    encrypted,
    peers: peers.map(({ id, name, ip, muted, candidate_type, joined_at }) => ({
      id,
      name,
      ip,
      muted,
      candidate_type,
      joined_at,
    })),
    host,
    locked,
    lobby: lobby.map(({ id, name, ip, since }) => ({ id, name, ip, since })),
  }));
}

/** @param {AdminRoom[]} rooms */
export function renderRooms(rooms) {
  byId('rooms-empty').hidden = rooms.length > 0;
  const container = byId('rooms');
  container.replaceChildren();
  const sorted = [...rooms].sort((a, b) => a.room.localeCompare(b.room));
  const names = columnNames();
  for (const room of sorted) {
    const article = el('article', null, 'room');
    article.dataset.room = room.room;
    const people = table('peers', Object.values(names));
    for (const peer of room.peers) people.tBodies[0].append(peerRow(peer, peer.id === room.host, names));
    article.append(roomHeading(room), people);
    if (room.lobby.length) article.append(lobbyPart(room, names));
    container.append(article);
  }
}

/** @param {string[]} bans addresses and networks */
export function renderBans(bans) {
  byId('bans-empty').hidden = bans.length > 0;
  const list = byId('bans');
  list.replaceChildren();
  for (const entry of bans) {
    const item = el('li');
    item.dataset.entry = entry;
    item.append(el('span', entry, 'mono'), button(t('admin_unban'), { action: 'unban', ip: entry }));
    list.append(item);
  }
}

// Levels and event names stay as the server's log writes them: they are what an operator greps for.
/**
 * @param {LogEvent[]} events oldest first
 * @param {boolean} clustered whether to say on which node each happened
 */
export function renderEvents(events, clustered) {
  byId('events-node').hidden = !clustered;
  const body = byId('events');
  body.replaceChildren();
  for (const event of [...events].reverse()) {
    const row = el('tr', null, `level-${event.level}`);
    const details = event.details && Object.keys(event.details).length ? JSON.stringify(event.details) : '';
    row.append(el('td', clockTime(event.ts)));
    if (clustered) row.append(el('td', event.node ?? '', 'mono'));
    row.append(
      el('td', event.level),
      el('td', event.event),
      el('td', event.room),
      el('td', event.peer, 'mono'),
      el('td', event.ip, 'mono'),
      el('td', details, 'details'),
    );
    body.append(row);
  }
}
