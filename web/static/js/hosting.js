// @ts-check
// The room's host as this page knows it: who hosts, whether the room is locked, who waits in its lobby (told
// only to the host), and the token that makes the role survive this tab's reconnects. The token lives in the
// tab's session storage, under the room's id, and nowhere else: never in a URL, gone when the tab closes or
// the person leaves on purpose.
import { MSG } from './contract.js';
import { Emitter } from './events.js';

/** @typedef {import('./signaling.js').Message} Message */
/** @typedef {{ id: string, name: string }} Waiting someone in the lobby */
/** @typedef {'remove' | 'ask_mute' | 'hand_over' | 'admit' | 'decline'} HostActionType */

const TOKEN_PREFIX = 'ghosttalk.host.';

/**
 * @param {unknown} raw the lobby's `waiting`
 * @returns {Waiting[]}
 */
function parseWaiting(raw) {
  if (!Array.isArray(raw)) return [];
  return raw.flatMap((/** @type {unknown} */ entry) => {
    if (!entry || typeof entry !== 'object') return [];
    const { id, name } = /** @type {{ id?: unknown, name?: unknown }} */ (entry);
    return typeof id === 'string' && typeof name === 'string' ? [{ id, name }] : [];
  });
}

/**
 * @extends {Emitter<{
 *   changed: undefined,
 *   waiting: undefined,
 *   muterequest: { from: string },
 * }>}
 */
export class RoomHosting extends Emitter {
  /**
   * @param {string} room
   * @param {(message: Message) => void} send to the server, on the current socket
   */
  constructor(room, send) {
    super();
    this.storageKey = TOKEN_PREFIX + room;
    this.send = send;
    /** @type {string | null} */
    this.selfId = null;
    /** @type {string | null} */
    this.host = null;
    this.locked = false;
    /** @type {Waiting[]} the lobby, while this page hosts */
    this.lobby = [];
  }

  get isHost() {
    return this.selfId !== null && this.host === this.selfId;
  }

  /**
   * A (re)join's welcome: the room's host and lock. A page that hosted before its connection dropped shows
   * its token to be host again.
   * @param {string} selfId
   * @param {unknown} host
   * @param {unknown} locked
   */
  welcome(selfId, host, locked) {
    this.selfId = selfId;
    this.host = typeof host === 'string' ? host : null;
    this.locked = locked === true;
    this.lobby = [];
    const token = this.storedToken();
    if (token && this.host !== selfId) this.send({ type: MSG.CLAIM_HOST, token });
    this.emit('changed');
  }

  /**
   * @param {Message} message
   * @returns {boolean} whether it was one of the host's messages
   */
  onMessage(message) {
    switch (message.type) {
      case MSG.HOST:
        if (typeof message.peer_id !== 'string') return true;
        this.host = message.peer_id;
        if (typeof message.token === 'string' && this.isHost) this.storeToken(message.token);
        if (!this.isHost) this.lobby = [];
        this.emit('changed');
        return true;
      case MSG.LOCK:
        this.locked = message.locked === true;
        this.emit('changed');
        return true;
      case MSG.LOBBY:
        this.lobby = parseWaiting(message.waiting);
        this.emit('changed');
        return true;
      case MSG.LOBBY_WAIT:
        this.emit('waiting');
        return true;
      case MSG.MUTE_REQUEST:
        if (typeof message.from === 'string') this.emit('muterequest', { from: message.from });
        return true;
      default:
        return false;
    }
  }

  /**
   * As the host: do something to one person (in the room, or waiting in the lobby).
   * @param {HostActionType} type
   * @param {string} peerId
   */
  act(type, peerId) {
    this.send({ type, peer_id: peerId });
  }

  /** @param {boolean} locked */
  setLocked(locked) {
    this.send({ type: MSG.LOCK, locked });
  }

  // Leaving on purpose gives the role up for good: the next one present longest keeps it.
  forget() {
    try {
      window.sessionStorage.removeItem(this.storageKey);
    } catch {
      // Storage refused: the token goes with the tab anyway.
    }
  }

  /** @returns {string | null} */
  storedToken() {
    try {
      return window.sessionStorage.getItem(this.storageKey);
    } catch {
      return null;
    }
  }

  /** @param {string} token */
  storeToken(token) {
    try {
      window.sessionStorage.setItem(this.storageKey, token);
    } catch {
      // Without storage the role does not survive a reconnect; everything else works.
    }
  }
}
