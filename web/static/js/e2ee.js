// @ts-check
// End-to-end encryption of a room, as docs/E2EE.md fixes it: the secret in the link's fragment, every key
// derived from it with HKDF, voice frames sealed by a worker (e2ee-worker.js) through WebRTC Encoded
// Transform, chat messages sealed here. The secret's bytes go into one non-extractable HKDF key at once;
// only that key object (never the text) reaches the worker, and nothing here stores or logs either.
// Also loaded by the worker: nothing at module level touches the DOM.

import { Emitter } from './events.js';
import { deriveAesKey, deriveBytes } from './hkdf.js';
import { peerIdBytes } from './voice-frames.js';

const encoder = new TextEncoder();
// 16 to 64 bytes of base64url; the length rule is checked apart (docs/E2EE.md "The secret").
const SECRET = /^[A-Za-z0-9_-]{22,86}$/;
const BASE64URL = /^[A-Za-z0-9_-]*$/;
const TAG_BYTES = 16;
const IV_BYTES = 12;
// docs/E2EE.md: 5,400 characters of sealed chat at most.
const MAX_SEALED_CHARS = 5400;

/** @typedef {{ kind: 'none' } | { kind: 'secret', secret: string } | { kind: 'damaged' }} SecretReading */
/**
 * Frames and summed microseconds since the room's crypto started, counted by the worker.
 * @typedef {{ encrypted: number, decrypted: number, failed: number, replayed: number,
 *   encryptMicros: number, decryptMicros: number }} CryptoStats
 */

/**
 * What the fragment of a room link holds (location.hash, with or without its '#').
 * @param {string} hash
 * @returns {SecretReading}
 */
export function readSecret(hash) {
  const value = hash.startsWith('#') ? hash.slice(1) : hash;
  if (value === '') return { kind: 'none' };
  // No base64 text is 1 more than a multiple of 4 long: that is a link cut or mistyped.
  if (!SECRET.test(value) || value.length % 4 === 1) return { kind: 'damaged' };
  return { kind: 'secret', secret: value };
}

/**
 * @param {Uint8Array} bytes
 * @returns {string} base64url without padding
 */
export function toBase64url(bytes) {
  let binary = '';
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/**
 * @param {string} text base64url without padding (bits left over in the last character are ignored)
 * @returns {Uint8Array<ArrayBuffer> | null} null when it is not base64url
 */
export function fromBase64url(text) {
  if (!BASE64URL.test(text) || text.length % 4 === 1) return null;
  const binary = atob(text.replace(/-/g, '+').replace(/_/g, '/'));
  return Uint8Array.from(binary, (ch) => ch.charCodeAt(0));
}

// 16 random bytes: the secret of a new room.
export function newSecret() {
  return toBase64url(crypto.getRandomValues(new Uint8Array(16)));
}

// Both ways a page can reach encoded frames; without either it cannot take part in an encrypted room.
export function encodedTransformSupported() {
  return 'RTCRtpScriptTransform' in globalThis
    || (typeof RTCRtpSender !== 'undefined' && 'createEncodedStreams' in RTCRtpSender.prototype);
}


/**
 * The options the page hands the worker with each transform (structured-cloned: the key stays an object).
 * @typedef {{ side: 'send' | 'receive', selfId: string, baseKey: CryptoKey, room: string }} TransformOptions
 */

/** @returns {CryptoStats} */
function noStats() {
  return { encrypted: 0, decrypted: 0, failed: 0, replayed: 0, encryptMicros: 0, decryptMicros: 0 };
}

/** @extends {Emitter<{ stats: CryptoStats }>} */
export class RoomCrypto extends Emitter {
  /**
   * @param {string} room
   * @param {CryptoKey} baseKey
   * @param {CryptoKey} chatKey
   * @param {string} keyCheck
   * @param {string} safetyCode
   */
  constructor(room, baseKey, chatKey, keyCheck, safetyCode) {
    super();
    this.room = room;
    this.baseKey = baseKey;
    this.chatKey = chatKey;
    this.keyCheck = keyCheck;
    this.safetyCode = safetyCode;
    /** @type {Worker | null} started with the first transform */
    this.worker = null;
    /** @type {CryptoStats} */
    this.latest = noStats();
  }

  /**
   * @param {string} room
   * @param {string} secret as readSecret found it
   * @returns {Promise<RoomCrypto>}
   */
  static async create(room, secret) {
    const bytes = fromBase64url(secret);
    if (!bytes) throw new Error('damaged key');
    const base = await crypto.subtle.importKey('raw', bytes, 'HKDF', false, ['deriveBits', 'deriveKey']);
    bytes.fill(0);
    const [check, safety, chatKey] = await Promise.all([
      deriveBytes(base, room, 'key-check', 16),
      deriveBytes(base, room, 'safety-code', 6),
      deriveAesKey(base, room, 'chat'),
    ]);
    // 48 bits fit a double exactly.
    const number = safety.reduce((sum, byte) => sum * 256 + byte, 0) % 1e12;
    const digits = String(number).padStart(12, '0');
    const code = `${digits.slice(0, 4)} ${digits.slice(4, 8)} ${digits.slice(8)}`;
    return new RoomCrypto(room, base, chatKey, toBase64url(check), code);
  }

  // Chromium without RTCRtpScriptTransform reaches frames through createEncodedStreams(), which it only
  // offers on a connection made with { encodedInsertableStreams: true }.
  static get usesEncodedStreams() {
    return !('RTCRtpScriptTransform' in globalThis);
  }

  /** @returns {CryptoStats} */
  get stats() {
    return { ...this.latest };
  }

  /**
   * @param {string} text
   * @param {string} selfId the sender's peer id (the additional data: the server cannot change `from`)
   * @returns {Promise<string>}
   */
  async sealChat(text, selfId) {
    const iv = crypto.getRandomValues(new Uint8Array(IV_BYTES));
    const sealed = await crypto.subtle.encrypt({ name: 'AES-GCM', iv, additionalData: encoder.encode(`chat/${selfId}`) },
      this.chatKey, encoder.encode(text));
    const out = new Uint8Array(IV_BYTES + sealed.byteLength);
    out.set(iv);
    out.set(new Uint8Array(sealed), IV_BYTES);
    return toBase64url(out);
  }

  /**
   * @param {unknown} sealed as the server relayed it
   * @param {unknown} fromId the peer id the server says sent it
   * @returns {Promise<string | null>} null when it does not open (wrong key, tampered, not from `fromId`)
   */
  async openChat(sealed, fromId) {
    if (typeof sealed !== 'string' || typeof fromId !== 'string' || sealed.length > MAX_SEALED_CHARS) return null;
    const bytes = fromBase64url(sealed);
    if (!bytes || bytes.byteLength < IV_BYTES + TAG_BYTES) return null;
    try {
      const plain = await crypto.subtle.decrypt(
        { name: 'AES-GCM', iv: bytes.subarray(0, IV_BYTES), additionalData: encoder.encode(`chat/${fromId}`) },
        this.chatKey, bytes.subarray(IV_BYTES));
      return new TextDecoder('utf-8', { fatal: true }).decode(plain);
    } catch {
      return null;
    }
  }

  /** @returns {Worker} */
  startWorker() {
    if (this.worker) return this.worker;
    const worker = new Worker(new URL('./e2ee-worker.js', import.meta.url), { type: 'module', name: 'e2ee' });
    worker.addEventListener('message', (event) => {
      /** @type {unknown} */
      const raw = event.data;
      const data = /** @type {{ stats?: CryptoStats } | null} */ (raw);
      if (!data || !data.stats) return;
      this.latest = data.stats;
      this.emit('stats', this.stats);
    });
    this.worker = worker;
    return worker;
  }

  /**
   * @param {RTCRtpSender | RTCRtpReceiver} endpoint
   * @param {'send' | 'receive'} side
   * @param {string} selfId
   */
  attach(endpoint, side, selfId) {
    const worker = this.startWorker();
    /** @type {TransformOptions} */
    const options = { side, selfId, baseKey: this.baseKey, room: this.room };
    if (!RoomCrypto.usesEncodedStreams) {
      endpoint.transform = new RTCRtpScriptTransform(worker, options);
      return;
    }
    // Not in the DOM types: Chromium's older, non-standard API.
    const legacy = /** @type {{ createEncodedStreams(): { readable: ReadableStream, writable: WritableStream } }} */ (
      /** @type {unknown} */ (endpoint));
    const { readable, writable } = legacy.createEncodedStreams();
    worker.postMessage({ options, readable, writable }, [readable, writable]);
  }

  /**
   * Seals everything `sender` sends, whatever track it carries later (the transform stays on the sender).
   * @param {RTCRtpSender} sender
   * @param {string} selfId this page's peer id on this connection
   */
  attachSender(sender, selfId) {
    peerIdBytes(selfId); // a peer id the frames cannot carry would make every frame unreadable
    this.attach(sender, 'send', selfId);
  }

  /** @param {RTCRtpReceiver} receiver */
  attachReceiver(receiver) {
    this.attach(receiver, 'receive', '');
  }
}
