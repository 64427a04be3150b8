// @ts-check
// The cluster's part of the operator panel: every node's health and load, this node's link to Redis, which
// node holds each room and which nodes did not answer. A server without --redis-url sends none of this, and
// the panel then shows none of it: the markup it fills stays hidden.

import { byId, el } from './dom.js';
import { t } from './i18n.js';

/**
 * One node's registration, as `action=stats` lists it.
 * @typedef {object} NodeInfo
 * @property {string} id
 * @property {boolean} self the node that answered, the one this panel is on
 * @property {string} http
 * @property {string[]} media the addresses its media (ICE) is reached on
 * @property {number} udp_port
 * @property {number} people
 * @property {number} rooms
 * @property {number} cpu percent of one core
 * @property {boolean} draining it takes no new rooms and will leave once its calls end
 * @property {number} started unix seconds
 * @property {number} seen seconds since it last refreshed its registration
 * @property {string} version
 */
/**
 * What `action=stats` adds on a clustered server.
 * @typedef {object} ClusterStats
 * @property {string} [node] this node's id
 * @property {'ok' | 'unreachable'} [redis] this node's link to Redis
 * @property {boolean} [draining]
 * @property {NodeInfo[]} [nodes]
 */

// A node refreshes its registration every second and expires a few seconds without one: past this, something
// is wrong with it (or with its link to Redis) although the cluster has not given up on it yet.
const STALE_SECONDS = 3;

/** @param {ClusterStats} stats */
export function clustered(stats) {
  return Array.isArray(stats.nodes);
}

/**
 * The stats list's lines about this node in its cluster; none without a cluster.
 * @param {ClusterStats & { shutting_down?: boolean }} stats
 * @returns {[string, string, string?][]} name, value, and the value's class
 */
export function clusterStatRows(stats) {
  if (!clustered(stats)) return [];
  const redisUp = stats.redis === 'ok';
  /** @type {[string, string, string?][]} */
  const rows = [
    // A node id is an identifier, shown as the ids and addresses are.
    [t('admin_node'), stats.node ?? '', 'mono'],
    [t('admin_redis'), redisUp ? t('admin_node_ok') : t('admin_redis_unreachable'), redisUp ? '' : 'error'],
  ];
  // Shutting down says more than draining, and renderStats already says it.
  if (stats.draining && !stats.shutting_down) rows.push([t('admin_state'), t('admin_draining'), 'draining']);
  return rows;
}

/**
 * How a node is doing, as a word and a class for its colour.
 * @param {NodeInfo} node
 * @returns {[string, string]}
 */
function health(node) {
  if (node.seen > STALE_SECONDS) return [t('admin_node_stale', { seconds: Math.round(node.seen) }), 'stale'];
  if (node.draining) return [t('admin_node_draining'), 'draining'];
  return [t('admin_node_ok'), 'ok'];
}

/**
 * A node id, and for the node the panel is on a mark that says so.
 * @param {NodeInfo} node
 */
function nodeCell(node) {
  const cell = el('td');
  cell.append(el('span', node.id, 'mono'));
  if (node.self) cell.append(' ', el('span', t('admin_this_node'), 'badge this-node'));
  return cell;
}

/**
 * The Nodes section: shown only in a cluster, drawn anew each poll (it holds no buttons to keep in place,
 * and every node's `seen` moves).
 * @param {ClusterStats} stats
 */
export function renderNodes(stats) {
  const section = byId('nodes-section');
  section.hidden = !clustered(stats);
  if (!clustered(stats)) return;
  byId('redis-warning').hidden = stats.redis !== 'unreachable';
  const body = byId('nodes');
  body.replaceChildren();
  for (const node of stats.nodes ?? []) {
    const row = el('tr');
    row.dataset.node = node.id;
    const [word, kind] = health(node);
    row.append(
      nodeCell(node),
      el('td', word, `node-status ${kind}`),
      el('td', node.people),
      el('td', node.rooms),
      el('td', `${node.cpu} %`),
      el('td', node.udp_port, 'mono'),
      el('td', node.media.join(', '), 'mono'),
      el('td', node.version, 'mono'),
    );
    body.append(row);
  }
}

/**
 * Where a room lives, for its heading; nothing for a room that a server without a cluster listed.
 * @param {string | undefined} node
 * @returns {HTMLElement | null}
 */
export function roomNode(node) {
  if (node === undefined) return null;
  const mark = el('span', null, 'badge room-node');
  mark.append(`${t('admin_node')} `, el('span', node, 'mono'));
  return mark;
}

/**
 * Names the nodes whose rooms are missing from the list because they did not answer in time, so that a
 * missing room is not taken for a closed one; then "no one is here" would not be known to be true either.
 * @param {string[]} unreachable node ids
 */
export function renderUnreachable(unreachable) {
  const notice = byId('rooms-partial');
  notice.hidden = unreachable.length === 0;
  notice.replaceChildren();
  if (notice.hidden) return;
  notice.append(t('admin_rooms_partial'));
  unreachable.forEach((id, index) => notice.append(index ? ', ' : ' ', el('span', id, 'mono')));
  byId('rooms-empty').hidden = true;
}
