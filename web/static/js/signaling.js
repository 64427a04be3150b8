// One signaling WebSocket: JSON text frames with a "type" field, a heartbeat every 10 s, and a way to
// learn why the server refused the upgrade (a browser only sees a failed WebSocket, never the reason).
const HEARTBEAT_MS = 10_000;
const STATES = ['connecting', 'open', 'closing', 'closed'];

export class Signaling extends EventTarget {
  constructor(room, name) {
    super();
    this.query = `room=${encodeURIComponent(room)}&name=${encodeURIComponent(name)}`;
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
      this.heartbeat = window.setInterval(() => this.send({ type: 'heartbeat', ts: Date.now() }), HEARTBEAT_MS);
      this.emit('state');
    });
    ws.addEventListener('message', (event) => this.onFrame(event.data));
    ws.addEventListener('close', () => {
      window.clearInterval(this.heartbeat);
      if (this.ws !== ws) return;
      this.emit('state');
      this.emit('close', { opened: this.opened });
    });
    this.emit('state');
  }

  onFrame(data) {
    if (typeof data !== 'string') return;
    let message;
    try {
      message = JSON.parse(data);
    } catch {
      return;
    }
    if (message && typeof message === 'object' && typeof message.type === 'string') this.emit('message', message);
  }

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
  async refusal() {
    try {
      const response = await fetch(`/ws?${this.query}`, { cache: 'no-store', credentials: 'omit' });
      const text = (await response.text()).trim().slice(0, 200);
      return { status: response.status, text };
    } catch {
      return null;
    }
  }

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}
