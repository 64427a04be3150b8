// One visit to a room: the signaling socket and the peer connection, rebuilt with backoff when either
// drops, until the person leaves or the server says no for good (full, kicked, banned, bad input).
import { PeerLink } from './peer.js';
import { Signaling } from './signaling.js';

// Short steps with a low ceiling: a restarted server is back within seconds and the page must be back
// within 10 s of that; jitter keeps a room of pages from reconnecting in lockstep.
const BACKOFF_MS = [250, 600, 1200, 2000, 3000];

function parsePeer(raw) {
  if (!raw || typeof raw !== 'object' || raw.id === undefined || raw.id === null) return null;
  return { id: String(raw.id), name: String(raw.name ?? ''), muted: raw.muted === true };
}

export class RoomSession extends EventTarget {
  constructor({ room, name, engine }) {
    super();
    this.room = room;
    this.name = name;
    this.engine = engine;
    this.peers = new Map();
    this.selfId = null;
    this.sig = null;
    this.link = null;
    this.muted = false;
    this.stopped = false;
    this.attempt = 0;
    this.retryTimer = 0;
    engine.addEventListener('sendtrack', (event) => {
      if (this.link) this.link.setTrack(event.detail.track);
    });
  }

  get socketState() {
    return this.sig ? this.sig.state : 'closed';
  }

  async connect() {
    if (this.stopped) return;
    let iceServers;
    try {
      // Imported afresh for every connection: TURN credentials in it expire.
      ({ iceServers } = await import(`./config.js?ts=${Date.now()}`));
    } catch {
      this.retry('server_unreachable');
      return;
    }
    if (this.stopped) return;
    const sig = new Signaling(this.room, this.name);
    this.sig = sig;
    this.iceServers = iceServers;
    sig.addEventListener('message', (event) => this.onMessage(sig, event.detail));
    sig.addEventListener('close', (event) => this.onClose(sig, event.detail));
    sig.addEventListener('state', () => this.emit('transport'));
    sig.open();
  }

  onMessage(sig, message) {
    if (sig !== this.sig) return;
    switch (message.type) {
      case 'room_state':
        this.onRoomState(sig, message);
        break;
      case 'peer_join': {
        const peer = parsePeer(message.peer);
        if (peer) {
          this.peers.set(peer.id, peer);
          this.emit('peers', { joined: peer });
        }
        break;
      }
      case 'peer_leave': {
        const id = String(message.peer_id);
        const peer = this.peers.get(id);
        if (peer && id !== this.selfId) {
          this.peers.delete(id);
          this.engine.detach(id);
          this.emit('peers', { left: peer });
        }
        break;
      }
      case 'peer_update': {
        const peer = parsePeer(message.peer);
        if (peer && this.peers.has(peer.id)) {
          this.peers.set(peer.id, peer);
          this.emit('peers', {});
        }
        break;
      }
      case 'offer':
      case 'answer':
        if (this.link && typeof message.sdp === 'string') this.link.handleDescription(message.type, message.sdp);
        break;
      case 'candidate':
        if (this.link) this.link.handleCandidate(message.candidate);
        break;
      case 'error':
        this.onServerError(String(message.message ?? ''));
        break;
      default:
        break;
    }
  }

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
    // A rejoin after a drop keeps the mute the person chose.
    if (this.muted) sig.send({ type: 'mute', muted: true });
    this.startLink(sig);
    this.emit('joined');
    this.emit('peers', {});
  }

  startLink(sig) {
    this.closeLink();
    const link = new PeerLink({
      iceServers: this.iceServers,
      track: this.engine.sendTrack,
      send: (message) => sig.send(message),
    });
    this.link = link;
    link.addEventListener('track', (event) => {
      const { peerId, track } = event.detail;
      if (peerId !== this.selfId) this.engine.attach(peerId, track);
      this.emit('audio');
    });
    link.addEventListener('trackended', (event) => {
      this.engine.detach(event.detail.peerId, event.detail.track);
      this.emit('audio');
    });
    link.addEventListener('problem', (event) => this.emit('problem', { message: String(event.detail.error) }));
    link.addEventListener('turnrefused', (event) => this.emit('turnrefused', event.detail));
    link.addEventListener('failed', (event) => {
      if (link !== this.link) return;
      this.drop('negotiation_failed', String(event.detail.error));
    });
    link.addEventListener('state', () => {
      this.emit('transport');
      if (link !== this.link) return;
      if (link.iceState === 'failed' || link.connectionState === 'failed') this.drop('ice_failed');
      // Back to short delays only once media flowed: a join that never connects keeps backing off.
      if (link.connectionState === 'connected') this.attempt = 0;
    });
    if (window.__E2E__) window.__pc = link.pc;
    this.emit('link', { link });
  }

  onServerError(message) {
    // Each comes right before the server closes the socket. Rejoining would be refused again (full, banned)
    // or undo an operator's decision (kicked), so these end the visit instead of starting a reconnect.
    const final = {
      'Room full': 'err_room_full',
      'Server full': 'err_server_full',
      kicked: 'err_kicked',
      banned: 'err_banned',
    }[message];
    if (final) {
      this.stop();
      this.emit('fatal', { key: final });
      return;
    }
    this.emit('problem', { message });
  }

  async onClose(sig, { opened }) {
    if (sig !== this.sig || this.stopped) return;
    this.teardown();
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

  drop(reason, detail) {
    const sig = this.sig;
    this.sig = null;
    if (sig) sig.close();
    this.teardown();
    this.retry(reason, detail);
  }

  retry(reason, detail = '') {
    if (this.stopped) return;
    const base = BACKOFF_MS[Math.min(this.attempt, BACKOFF_MS.length - 1)];
    this.attempt += 1;
    const delay = Math.round(base * (0.75 + Math.random() * 0.5));
    this.emit('reconnecting', { reason, detail, delay });
    window.clearTimeout(this.retryTimer);
    this.retryTimer = window.setTimeout(() => this.connect(), delay);
  }

  setMuted(muted) {
    this.muted = muted;
    this.engine.setSending(!muted);
    if (this.sig) this.sig.send({ type: 'mute', muted });
    const self = this.peers.get(this.selfId);
    if (self) self.muted = muted;
    this.emit('peers', {});
  }

  closeLink() {
    if (!this.link) return;
    this.link.close();
    this.link = null;
    if (window.__E2E__) window.__pc = null;
  }

  teardown() {
    this.closeLink();
    this.engine.detachAll();
    this.peers = new Map();
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

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}
