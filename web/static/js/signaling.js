// @ts-check
// One signaling WebSocket: JSON text frames with a "type" field, a heartbeat every 10 s, and a way to
// learn why the server refused the upgrade (a browser only sees a failed WebSocket, never the reason).
import { MSG } from './contract.js';
import { Emitter } from './events.js';

const HEARTBEAT_MS = 10_000;
const STATES = ['connecting', 'open', 'closing', 'closed'];

/** @typedef {{ type: string, [field: string]: unknown }} Message a signaling message, either way */
/** @typedef {{ status: number, text: string }} Refusal the HTTP answer to a refused upgrade */

/**
 * @extends {Emitter<{
 *   state: undefined,
 *   message: Message,
 *   close: { opened: boolean, code: number, reason: string },
 * }>}
 */
export class Signaling extends Emitter {
  /**
   * @param {string} room
   * @param {string} name
   * @param {string | null} keyCheck an encrypted room's key-check value (docs/E2EE.md); never the secret
   */
  constructor(room, name, keyCheck) {
    super();
    this.query = `room=${encodeURIComponent(room)}&name=${encodeURIComponent(name)}`
      + (keyCheck === null ? '' : `&key_check=${encodeURIComponent(keyCheck)}`);
    /** @type {WebSocket | null} */
    this.ws = null;
    this.opened = false;
    this.heartbeat = 0;
  }

  get secure() {
    return window.location.protocol === 'https:';
  }

  get state() {
    return this.ws ? STATES[this.ws.readyState] : 'closed';
  }

  open() {
    const scheme = this.secure ? 'wss' : 'ws';
    const ws = new WebSocket(`${scheme}://${window.location.host}/ws?${this.query}`);
    this.ws = ws;
    ws.addEventListener('open', () => {
      this.opened = true;
      this.heartbeat = window.setInterval(() => this.send({ type: MSG.HEARTBEAT, ts: Date.now() }), HEARTBEAT_MS);
      this.emit('state');
    });
    ws.addEventListener('message', (event) => this.onFrame(event.data));
    ws.addEventListener('close', (event) => {
      window.clearInterval(this.heartbeat);
      if (this.ws !== ws) return;
      this.emit('state');
      // The code says whether to come back (contract.js STAY_AWAY); the reason names what happened.
      this.emit('close', { opened: this.opened, code: event.code, reason: event.reason });
    });
    this.emit('state');
  }

  /** @param {unknown} data */
  onFrame(data) {
    if (typeof data !== 'string') return;
    /** @type {unknown} */
    let message;
    try {
      message = JSON.parse(data);
    } catch {
      return;
    }
    if (isMessage(message)) this.emit('message', message);
  }

  /** @param {Message} message */
  send(message) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(message));
  }

  // Closing on purpose: no 'close' event follows, so nobody mistakes it for a lost connection.
  close() {
    const ws = this.ws;
    this.ws = null;
    window.clearInterval(this.heartbeat);
    if (ws && ws.readyState < WebSocket.CLOSING) ws.close(1000, 'bye');
  }

  // Ask the same URL over plain HTTP: the server refuses bad input, bans and overload with a status and a
  // text reason before any upgrade. Returns null when the server cannot be reached at all.
  /** @returns {Promise<Refusal | null>} */
  async refusal() {
    try {
      const response = await fetch(`/ws?${this.query}`, { cache: 'no-store', credentials: 'omit' });
      const text = (await response.text()).trim().slice(0, 200);
      return { status: response.status, text };
    } catch {
      return null;
    }
  }
}

/**
 * @param {unknown} value
 * @returns {value is Message}
 */
function isMessage(value) {
  return typeof value === 'object' && value !== null && 'type' in value && typeof value.type === 'string';
}
