// @ts-check
// One visit to a room: the signaling socket and the peer connection, rebuilt with backoff when either
// drops, until the person leaves or the server says no for good (full, kicked, banned, bad input).
import { CLOSE, MAX_RECEIVE_LINES, MSG, STAY_AWAY } from './contract.js';
import { Emitter } from './events.js';
import { fetchIceServers } from './ice-servers.js';
import { RoomHosting } from './hosting.js';
import { ForwardingLines, isLine } from './lines.js';
import { PeerLink } from './peer.js';
import { Signaling } from './signaling.js';

/** @typedef {{ id: string, name: string, muted: boolean }} Peer one person in the room, as the page shows them */
/** @typedef {import('./signaling.js').Message} Message */
/** @typedef {import('./audio.js').AudioEngine} AudioEngine */

// Short steps with a low ceiling: a restarted server is back within seconds and the page must be back
// within 10 s of that; jitter keeps a room of pages from reconnecting in lockstep.
const BACKOFF_MS = [250, 600, 1200, 2000, 3000];

/**
 * What to tell a person the server sent away for good (a full room and a full server share a close code; the
 * close reason, the server's error text, tells them apart).
 * @param {number} code one of contract.js STAY_AWAY
 * @param {string} reason
 * @returns {string} the message's key
 */
function stayAwayKey(code, reason) {
  /** @type {Record<number, string>} */
  const keys = {
    [CLOSE.KICKED]: 'err_kicked',
    [CLOSE.BANNED]: 'err_banned',
    [CLOSE.KEY_MISSING]: 'err_key_missing',
    [CLOSE.KEY_MISMATCH]: 'err_key_mismatch',
    [CLOSE.NOT_ENCRYPTED]: 'err_room_not_encrypted',
    [CLOSE.REMOVED]: 'err_removed',
    [CLOSE.DECLINED]: 'err_declined',
    [CLOSE.LOBBY_TIMEOUT]: 'err_lobby_timeout',
    [CLOSE.LOBBY_CLOSED]: 'err_lobby_closed',
  };
  return keys[code] ?? (reason === 'Server full' ? 'err_server_full' : 'err_room_full');
}

/**
 * @param {unknown} raw a peer as the server describes it
 * @returns {Peer | null}
 */
function parsePeer(raw) {
  if (!raw || typeof raw !== 'object') return null;
  const { id, name, muted } = /** @type {{ id?: unknown, name?: unknown, muted?: unknown }} */ (raw);
  // The server sends strings; anything else is not a peer it described.
  if (typeof id !== 'string' && typeof id !== 'number') return null;
  return { id: String(id), name: typeof name === 'string' ? name : '', muted: muted === true };
}

/**
 * @extends {Emitter<{
 *   peers: { joined?: Peer, left?: Peer },
 *   joined: undefined,
 *   reconnecting: { reason: string, detail: string, delay: number },
 *   fatal: { key: string, vars?: import('./i18n.js').Vars },
 *   problem: { message: string },
 *   turnrefused: import('./peer.js').TurnRefusal,
 *   transport: undefined,
 *   link: { link: PeerLink },
 *   audio: undefined,
 *   levels: { levels: Map<string, number> },
 *   chat: { from: string, text?: string, sealed?: string },
 * }>}
 */
export class RoomSession extends Emitter {
  /**
   * @param {object} options
   * @param {string} options.room
   * @param {string} options.name the nickname, already checked
   * @param {AudioEngine} options.engine
   * @param {import('./e2ee.js').RoomCrypto | null} options.crypto an encrypted room's keys; null: a plain room
   */
  constructor({ room, name, engine, crypto }) {
    super();
    this.room = room;
    this.name = name;
    this.engine = engine;
    this.crypto = crypto;
    /** @type {Map<string, Peer>} */
    this.peers = new Map();
    /** @type {string | null} */
    this.selfId = null;
    /** @type {Signaling | null} */
    this.sig = null;
    /** @type {PeerLink | null} */
    this.link = null;
    /** @type {RTCIceServer[]} */
    this.iceServers = [];
    this.muted = false;
    this.stopped = false;
    this.attempt = 0;
    this.retryTimer = 0;
    this.lines = new ForwardingLines(engine, () => this.selfId);
    // The room's host, lock and lobby; its messages go out on whichever socket is current.
    this.hosting = new RoomHosting(room, (message) => this.sig?.send(message));
    engine.on('sendtrack', ({ track }) => {
      if (this.link) this.link.setTrack(track);
    });
  }

  get socketState() {
    return this.sig ? this.sig.state : 'closed';
  }

  // Never rejects: whatever fails becomes a retry.
  async connect() {
    if (this.stopped) return;
    /** @type {RTCIceServer[]} */
    let iceServers;
    try {
      iceServers = await fetchIceServers();
    } catch {
      this.retry('server_unreachable');
      return;
    }
    if (this.stopped) return;
    const sig = new Signaling(this.room, this.name, this.crypto ? this.crypto.keyCheck : null);
    this.sig = sig;
    this.iceServers = iceServers;
    sig.on('message', (message) => this.onMessage(sig, message));
    sig.on('close', (detail) => void this.onClose(sig, detail));
    sig.on('state', () => this.emit('transport'));
    sig.open();
  }

  /**
   * @param {Signaling} sig
   * @param {Message} message
   */
  onMessage(sig, message) {
    if (sig !== this.sig) return;
    switch (message.type) {
      case MSG.ROOM_STATE:
        this.onRoomState(sig, message);
        break;
      case MSG.PEER_JOIN: {
        const peer = parsePeer(message.peer);
        if (peer) {
          this.peers.set(peer.id, peer);
          this.emit('peers', { joined: peer });
        }
        break;
      }
      case MSG.PEER_LEAVE: {
        const id = String(message.peer_id);
        const peer = this.peers.get(id);
        if (peer && id !== this.selfId) {
          this.peers.delete(id);
          this.engine.detach(id);
          this.emit('peers', { left: peer });
        }
        break;
      }
      case MSG.PEER_UPDATE: {
        const peer = parsePeer(message.peer);
        if (peer && this.peers.has(peer.id)) {
          this.peers.set(peer.id, peer);
          this.emit('peers', {});
        }
        break;
      }
      case MSG.OFFER:
      case MSG.ANSWER:
        if (this.link && typeof message.sdp === 'string') void this.link.handleDescription(message.type, message.sdp);
        break;
      case MSG.CANDIDATE:
        // Passed on as sent: the browser refuses a malformed one, which only costs that path ('problem').
        if (this.link) void this.link.handleCandidate(/** @type {RTCIceCandidateInit | null} */ (message.candidate));
        break;
      case MSG.FORWARDING:
        this.lines.update(message.lines);
        this.emit('audio');
        break;
      case MSG.LEVELS:
        this.onLevels(message.levels);
        break;
      case MSG.CHAT: {
        const { from, text, sealed } = message;
        // Exactly one of the bodies; whether it suits the room is the chat panel's to judge.
        if (typeof from === 'string' && (typeof text === 'string') !== (typeof sealed === 'string')) {
          this.emit('chat', typeof text === 'string' ? { from, text } : { from, sealed: String(sealed) });
        }
        break;
      }
      case MSG.ERROR:
        // Whether the visit goes on is the close code's to say (onClose); the text is for diagnostics.
        this.emit('problem', { message: typeof message.message === 'string' ? message.message : '' });
        break;
      default:
        this.hosting.onMessage(message);
        break;
    }
  }

  /**
   * @param {Signaling} sig
   * @param {Message} message
   */
  onRoomState(sig, message) {
    this.selfId = String(message.self_id);
    this.peers = new Map();
    for (const raw of Array.isArray(message.peers) ? message.peers : []) {
      const peer = parsePeer(raw);
      if (peer) this.peers.set(peer.id, peer);
    }
    const self = this.peers.get(this.selfId) || { id: this.selfId, name: this.name, muted: false };
    self.muted = this.muted;
    this.peers.set(this.selfId, self);
    this.hosting.welcome(this.selfId, message.host, message.locked);
    // A rejoin after a drop keeps the mute the person chose.
    if (this.muted) sig.send({ type: MSG.MUTE, muted: true });
    // A server that does not say how many lines to offer gets the voice alone, and adds the rest by offering.
    const lines = message.receive_lines;
    const known = typeof lines === 'number' && Number.isInteger(lines) && lines >= 0;
    this.startLink(sig, known ? Math.min(lines, MAX_RECEIVE_LINES) : null);
    this.emit('joined');
    this.emit('peers', {});
  }

  /**
   * @param {Signaling} sig
   * @param {number | null} receiveLines
   */
  startLink(sig, receiveLines) {
    this.closeLink();
    let link;
    try {
      link = new PeerLink({
        iceServers: this.iceServers,
        track: this.engine.sendTrack,
        receiveLines,
        send: (message) => sig.send(message),
        crypto: this.crypto,
        selfId: this.selfId ?? '',
      });
    } catch (error) {
      // A welcome the room's keys cannot follow (a self id that is no peer id): as any failed negotiation.
      this.drop('negotiation_failed', String(error));
      return;
    }
    this.link = link;
    link.on('track', ({ peerId, track }) => {
      if (isLine(peerId)) this.lines.add(peerId, track);
      else if (peerId !== this.selfId) this.engine.attach(peerId, track);
      this.emit('audio');
    });
    link.on('trackended', ({ peerId, track }) => {
      if (isLine(peerId)) this.lines.remove(peerId, track);
      else this.engine.detach(peerId, track);
      this.emit('audio');
    });
    link.on('problem', ({ error }) => this.emit('problem', { message: String(error) }));
    link.on('turnrefused', (refusal) => this.emit('turnrefused', refusal));
    link.on('failed', ({ error }) => {
      if (link !== this.link) return;
      this.drop('negotiation_failed', String(error));
    });
    link.on('state', () => {
      this.emit('transport');
      if (link !== this.link) return;
      if (link.iceState === 'failed' || link.connectionState === 'failed') this.drop('ice_failed');
      // Back to short delays only once media flowed: a join that never connects keeps backing off.
      if (link.connectionState === 'connected') this.attempt = 0;
    });
    this.emit('link', { link });
  }

  /**
   * Levels (RFC 6464 -dBov: 0 loudest, 127 silent) of people whose voice this page does not receive.
   * @param {unknown} levels peer id -> level
   */
  onLevels(levels) {
    if (!levels || typeof levels !== 'object') return;
    /** @type {Map<string, number>} */
    const valid = new Map();
    for (const [peerId, level] of Object.entries(/** @type {Record<string, unknown>} */ (levels))) {
      if (typeof level === 'number' && this.peers.has(peerId)) valid.set(peerId, level);
    }
    if (valid.size) this.emit('levels', { levels: valid });
  }

  // Never rejects.
  /**
   * @param {Signaling} sig
   * @param {{ opened: boolean, code: number, reason: string }} detail opened: whether the socket got as far as open
   */
  async onClose(sig, { opened, code, reason }) {
    if (sig !== this.sig || this.stopped) return;
    this.teardown();
    // Rejoining would be refused again (full, banned) or undo an operator's decision (kicked): the visit ends.
    if (STAY_AWAY.includes(code)) {
      this.stop();
      this.emit('fatal', { key: stayAwayKey(code, reason) });
      return;
    }
    if (!opened) {
      const refusal = await sig.refusal();
      if (sig !== this.sig || this.stopped) return;
      // 400 and 403 carry the server's reason and will not change by retrying; anything else
      // (429, 503, an unreachable server) is worth another try.
      const final = refusal
        && (refusal.status === 403 || (refusal.status === 400 && !/upgrade/i.test(refusal.text)));
      if (final) {
        this.stop();
        this.emit('fatal', { key: 'err_refused', vars: { reason: refusal.text || String(refusal.status) } });
        return;
      }
      if (refusal && refusal.status >= 400) this.emit('problem', { message: `${refusal.status} ${refusal.text}` });
    }
    this.retry(opened ? 'ws_lost' : 'ws_failed');
  }

  /**
   * @param {string} reason
   * @param {string} [detail]
   */
  drop(reason, detail) {
    const sig = this.sig;
    this.sig = null;
    if (sig) sig.close();
    this.teardown();
    this.retry(reason, detail);
  }

  /**
   * @param {string} reason the suffix of the reason_… string that explains it
   * @param {string} [detail]
   */
  retry(reason, detail = '') {
    if (this.stopped) return;
    const base = BACKOFF_MS[Math.min(this.attempt, BACKOFF_MS.length - 1)];
    this.attempt += 1;
    const delay = Math.round(base * (0.75 + Math.random() * 0.5));
    this.emit('reconnecting', { reason, detail, delay });
    window.clearTimeout(this.retryTimer);
    this.retryTimer = window.setTimeout(() => void this.connect(), delay);
  }

  /**
   * One chat message to the room (the server does not echo it back).
   * @param {{ text: string } | { sealed: string }} body plain text, or sealed in an encrypted room
   * @returns {boolean} whether it went out (false: not connected right now)
   */
  sendChat(body) {
    if (!this.sig || this.sig.state !== 'open') return false;
    this.sig.send({ type: MSG.CHAT, ...body });
    return true;
  }

  /** @param {boolean} muted */
  setMuted(muted) {
    this.muted = muted;
    this.engine.setSending(!muted);
    if (this.sig) this.sig.send({ type: MSG.MUTE, muted });
    const self = this.selfId === null ? undefined : this.peers.get(this.selfId);
    if (self) self.muted = muted;
    this.emit('peers', {});
  }

  closeLink() {
    if (!this.link) return;
    this.link.close();
    this.link = null;
  }

  teardown() {
    this.closeLink();
    this.lines.clear();
    this.engine.detachAll();
    // Between connections the page keeps showing who was here (as reconnecting) until the next room_state
    // replaces them; only leaving for good empties the room.
    if (this.stopped) this.peers = new Map();
    this.emit('peers', {});
    this.emit('transport');
  }

  // Leaving on purpose (button, closing the tab): close at once so the server tells the others now.
  stop() {
    this.stopped = true;
    window.clearTimeout(this.retryTimer);
    const sig = this.sig;
    this.sig = null;
    if (sig) sig.close();
    this.teardown();
  }
}
