// @ts-check
// Voice frames of an end-to-end encrypted room (docs/E2EE.md "Voice frames"): each sender's frames sealed under
// its own key with a salt and a counter in the IV, opened by the key the frame's sender id names, replays
// dropped. Used by the transform worker (e2ee-worker.js); nothing here touches the DOM.

import { deriveAesKey } from './hkdf.js';

const PEER_ID = /^[0-9a-f]{16}$/;
const FRAME_VERSION = 1;
const HEADER_BYTES = 17;
// A frame this far behind the newest one opened for its sender and salt is a replay, not a late packet; within
// that window, a counter already opened is one too. The ring that remembers them holds a little more.
const REPLAY_WINDOW = 250;
const REPLAY_RING = 256;
// Sender-and-salt pairs remembered for the replay check; a page meets a few per person per visit.
const MAX_REPLAY_ENTRIES = 1024;
// Voice keys kept: far more than a room's people over a visit (a cleared cache only costs derivations).
const MAX_KEYS = 1024;
const MAX_COUNTER = 0xffffffff;
const TAG_BYTES = 16;
const IV_BYTES = 12;

/**
 * @param {string} peerId 16 lowercase hex digits
 * @returns {Uint8Array} its 8 bytes
 */
export function peerIdBytes(peerId) {
  if (!PEER_ID.test(peerId)) throw new Error(`not a peer id: ${peerId}`);
  return Uint8Array.from({ length: 8 }, (_, i) => parseInt(peerId.slice(2 * i, 2 * i + 2), 16));
}

/**
 * @param {Uint8Array} bytes
 * @returns {string}
 */
function hex(bytes) {
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, '0')).join('');
}

/**
 * The IV of a voice frame: 4 zero bytes, the salt, the counter (the header's bytes 9-16 after 4 zeros).
 * @param {Uint8Array} header
 */
function voiceIv(header) {
  const iv = new Uint8Array(IV_BYTES);
  iv.set(header.subarray(9, HEADER_BYTES), 4);
  return iv;
}

// One sender's voice for one connection: a fresh salt, and a counter that never repeats under it.
export class VoiceSealer {
  /**
   * @param {CryptoKey} key voice/<peer id>
   * @param {string} peerId the sender's own
   */
  constructor(key, peerId) {
    this.key = key;
    this.header = new Uint8Array(HEADER_BYTES);
    this.header[0] = FRAME_VERSION;
    this.header.set(peerIdBytes(peerId), 1);
    this.view = new DataView(this.header.buffer);
    this.counter = 0;
    this.newSalt();
  }

  newSalt() {
    this.header.set(crypto.getRandomValues(new Uint8Array(4)), 9);
    this.counter = 0;
  }

  /**
   * @param {BufferSource} frame an encoded Opus frame
   * @returns {Promise<Uint8Array<ArrayBuffer>>} the RTP payload that carries it
   */
  async seal(frame) {
    // The counter's last value is used once, then the salt changes: an IV never repeats under the key.
    if (this.counter > MAX_COUNTER) this.newSalt();
    this.view.setUint32(13, this.counter);
    this.counter += 1;
    const header = this.header.slice();
    const sealed = await crypto.subtle.encrypt({ name: 'AES-GCM', iv: voiceIv(header), additionalData: header },
      this.key, frame);
    const out = new Uint8Array(HEADER_BYTES + sealed.byteLength);
    out.set(header);
    out.set(new Uint8Array(sealed), HEADER_BYTES);
    return out;
  }
}

// Every sender's voice, as one receiver sees it: the key from the peer id in each frame (so it needs no idea
// whom a forwarding line carries now) and the newest counter opened per sender and salt.
// The counters opened on one sender's connection (one salt): the highest, and which of the last REPLAY_WINDOW
// before it, in a ring indexed by counter (each slot holds the counter last opened there).
class ReplayWindow {
  constructor() {
    this.highest = -1;
    this.ring = new Float64Array(REPLAY_RING).fill(-1);
  }

  /** @param {number} counter */
  replayed(counter) {
    return counter + REPLAY_WINDOW < this.highest || this.ring[counter % REPLAY_RING] === counter;
  }

  /** @param {number} counter */
  opened(counter) {
    this.ring[counter % REPLAY_RING] = counter;
    this.highest = Math.max(this.highest, counter);
  }
}

export class VoiceOpener {
  /** @param {(peerId: string) => Promise<CryptoKey>} keyFor */
  constructor(keyFor) {
    this.keyFor = keyFor;
    /** @type {Map<string, ReplayWindow>} sender id + salt -> the counters opened under it */
    this.windows = new Map();
  }

  /**
   * @param {ArrayBuffer} payload an RTP payload as a sender sealed it
   * @returns {Promise<{ frame: ArrayBuffer } | { dropped: 'failed' | 'replayed' }>}
   */
  async open(payload) {
    const data = new Uint8Array(payload);
    if (data.byteLength < HEADER_BYTES + TAG_BYTES || data[0] !== FRAME_VERSION) return { dropped: 'failed' };
    const header = data.slice(0, HEADER_BYTES);
    const stream = hex(header.subarray(1, 13));
    const counter = new DataView(header.buffer).getUint32(13);
    const window = this.windows.get(stream);
    if (window && window.replayed(counter)) return { dropped: 'replayed' };
    let frame;
    try {
      const key = await this.keyFor(hex(header.subarray(1, 9)));
      frame = await crypto.subtle.decrypt({ name: 'AES-GCM', iv: voiceIv(header), additionalData: header },
        key, data.subarray(HEADER_BYTES));
    } catch {
      return { dropped: 'failed' };
    }
    // Only a frame that opened is remembered: a forged counter cannot push real frames out of the window.
    const opened = window ?? new ReplayWindow();
    opened.opened(counter);
    this.windows.delete(stream);
    this.windows.set(stream, opened);
    if (this.windows.size > MAX_REPLAY_ENTRIES) this.windows.delete(this.windows.keys().next().value ?? '');
    return { frame };
  }
}

// Voice keys per sender, derived once each (a room has up to a hundred people, each key used ~50 times a second).
export class VoiceKeys {
  /**
   * @param {CryptoKey} base
   * @param {string} room
   */
  constructor(base, room) {
    this.base = base;
    this.room = room;
    /** @type {Map<string, Promise<CryptoKey>>} */
    this.keys = new Map();
  }

  /**
   * @param {string} peerId
   * @returns {Promise<CryptoKey>}
   */
  get(peerId) {
    let key = this.keys.get(peerId);
    if (!key) {
      if (this.keys.size >= MAX_KEYS) this.keys.clear();
      key = deriveAesKey(this.base, this.room, `voice/${peerId}`);
      this.keys.set(peerId, key);
    }
    return key;
  }
}
