// @ts-check
// The one RTCPeerConnection to the server. The page sends one audio track and receives one track per
// other person; the MediaStream id of each incoming track is the peer id of whoever speaks on it.
// The first offer already carries the receive-only lines the server asked for (room_state's receive_lines)
// and a data channel line, so that the server's answer sends the room's voices on them and its heartbeat
// channel rides the same negotiation: one round trip before the person hears the room.
// Negotiation follows the "perfect negotiation" pattern with the page as the polite side: an offer from
// the server that collides with our own rolls ours back (the server never rolls back).
// In an end-to-end encrypted room every sender and receiver of the connection gets the room's transform
// (e2ee.js) as soon as it exists, before a frame can pass it in the clear.

import { MSG } from './contract.js';
import { RoomCrypto } from './e2ee.js';
import { Emitter } from './events.js';

/** @typedef {import('./signaling.js').Message} Message */
/** @typedef {{ peerId: string, track: MediaStreamTrack }} PeerTrack a person's incoming track */
/** @typedef {{ url: string, code: number, text: string }} TurnRefusal */
/** @typedef {'failed' | 'problem'} Failure */

// The data channel that only puts a data channel line into the first offer (the server's heartbeat channel
// uses it): negotiated, so nothing is sent to open it, and odd, the ids of the DTLS server the offerer is
// here, far from those the server's channels take.
const LINE_CHANNEL_ID = 1023;

/**
 * @extends {Emitter<{
 *   state: undefined,
 *   failed: { error: unknown },
 *   problem: { error: unknown },
 *   turnrefused: TurnRefusal,
 *   track: PeerTrack,
 *   trackended: PeerTrack,
 * }>}
 */
export class PeerLink extends Emitter {
  /**
   * @param {object} options
   * @param {RTCIceServer[]} options.iceServers
   * @param {MediaStreamTrack | null} options.track what to send first
   * @param {number | null} options.receiveLines receive-only lines for the first offer (null: the server did
   *   not say, so the offer carries the voice alone)
   * @param {(message: Message) => void} options.send to the server
   * @param {RoomCrypto | null} [options.crypto] the room's keys; null in a plain room
   * @param {string} [options.selfId] this page's peer id on this connection (what its voice is sealed as)
   */
  constructor({ iceServers, track, receiveLines, send, crypto = null, selfId = '' }) {
    super();
    this.send = send;
    this.crypto = crypto;
    this.closed = false;
    /** @type {WeakSet<RTCRtpReceiver>} receivers that have the room's transform */
    this.decrypting = new WeakSet();
    // Descriptions and candidates are applied one at a time, in arrival order.
    /** @type {Promise<void>} */
    this.queue = Promise.resolve();
    /** @type {WeakSet<MediaStream>} */
    this.watchedStreams = new WeakSet();
    /** @type {RTCConfiguration} */
    const config = { iceServers, bundlePolicy: 'max-bundle' };
    // Not in the DOM types: Chromium's switch for createEncodedStreams(), only for the encrypted fallback.
    if (crypto && RoomCrypto.usesEncodedStreams) Object.assign(config, { encodedInsertableStreams: true });
    this.pc = new RTCPeerConnection(config);
    // The engine always has a track to send; the kind only keeps the checker's null case well defined.
    const transceiver = this.pc.addTransceiver(track ?? 'audio', { direction: 'sendrecv' });
    this.sender = transceiver.sender;
    if (crypto) {
      crypto.attachSender(this.sender, selfId);
      this.decrypt(transceiver.receiver);
    }
    if (receiveLines !== null) {
      for (let i = 0; i < receiveLines; i += 1) {
        this.decrypt(this.pc.addTransceiver('audio', { direction: 'recvonly' }).receiver);
      }
      try {
        this.pc.createDataChannel('lines', { negotiated: true, id: LINE_CHANNEL_ID });
      } catch {
        // Without it the server offers its heartbeat channel separately: one more round trip, nothing lost.
      }
    }
    this.pc.addEventListener('negotiationneeded', () => void this.enqueue(() => this.offer()));
    this.pc.addEventListener('icecandidate', (event) => this.onLocalCandidate(event.candidate));
    this.pc.addEventListener('track', (event) => this.onTrack(event));
    this.pc.addEventListener('datachannel', (event) => this.onDataChannel(event.channel));
    this.pc.addEventListener('icecandidateerror', (event) => this.onCandidateError(event));
    for (const name of ['iceconnectionstatechange', 'connectionstatechange', 'signalingstatechange']) {
      this.pc.addEventListener(name, () => this.emit('state'));
    }
  }

  get iceState() {
    return this.pc.iceConnectionState;
  }

  get connectionState() {
    return this.pc.connectionState;
  }

  // A description that cannot be applied leaves the two sides disagreeing about the session ('failed');
  // a candidate that cannot be added only costs one path ('problem'). The returned promise never rejects.
  /**
   * @param {() => Promise<void>} step
   * @param {Failure} [failure]
   * @returns {Promise<void>}
   */
  enqueue(step, failure = 'failed') {
    this.queue = this.queue.then(step).catch((error) => {
      if (!this.closed) this.emit(failure, { error });
    });
    return this.queue;
  }

  async offer() {
    // negotiationneeded fires again once stable if the change is still not negotiated.
    if (this.closed || this.pc.signalingState !== 'stable') return;
    await this.pc.setLocalDescription();
    this.send({ type: MSG.OFFER, sdp: this.pc.localDescription?.sdp });
  }

  /**
   * @param {'offer' | 'answer'} type
   * @param {string} sdp
   * @returns {Promise<void>}
   */
  handleDescription(type, sdp) {
    return this.enqueue(async () => {
      if (this.closed) return;
      const pc = this.pc;
      if (type === 'answer') {
        // An answer to an offer we rolled back (or never made) has nothing to apply to.
        if (pc.signalingState !== 'have-local-offer') return;
        await pc.setRemoteDescription({ type, sdp });
        return;
      }
      if (pc.signalingState === 'have-local-offer') await pc.setLocalDescription({ type: 'rollback' });
      await pc.setRemoteDescription({ type, sdp });
      await pc.setLocalDescription();
      this.send({ type: MSG.ANSWER, sdp: pc.localDescription?.sdp });
    });
  }

  // Swaps what the page sends (the audio graph's output or the bare microphone) without renegotiating.
  /** @param {MediaStreamTrack | null} track */
  setTrack(track) {
    if (this.closed || this.sender.track === track) return;
    this.sender.replaceTrack(track).catch((error) => {
      if (!this.closed) this.emit('problem', { error });
    });
  }

  /**
   * @param {RTCIceCandidateInit | null} candidate as the server sent it
   * @returns {Promise<void>}
   */
  handleCandidate(candidate) {
    return this.enqueue(async () => {
      if (this.closed || !this.pc.remoteDescription) return;
      // null or an empty candidate string means the server has no more candidates.
      await this.pc.addIceCandidate(candidate && candidate.candidate ? candidate : null);
    }, 'problem');
  }

  /** @param {RTCIceCandidate | null} candidate */
  onLocalCandidate(candidate) {
    if (!candidate || !candidate.candidate) return;
    const { sdpMid, sdpMLineIndex } = candidate;
    this.send({ type: MSG.CANDIDATE, candidate: { candidate: candidate.candidate, sdpMid, sdpMLineIndex } });
  }

  // A TURN server that answers 401 refused the credentials the server handed out: a configuration
  // problem the person cannot fix, but can report in words that point the operator at it.
  /** @param {RTCPeerConnectionIceErrorEvent} event */
  onCandidateError(event) {
    if (event.errorCode === 401 && /^turns?:/.test(event.url || '')) {
      this.emit('turnrefused', { url: event.url, code: event.errorCode, text: event.errorText });
    }
  }

  // Each receiver once: the server reuses them for other people, and a transform cannot be set up twice.
  /** @param {RTCRtpReceiver} receiver */
  decrypt(receiver) {
    if (!this.crypto || this.decrypting.has(receiver)) return;
    this.decrypting.add(receiver);
    this.crypto.attachReceiver(receiver);
  }

  /** @param {RTCTrackEvent} event */
  onTrack(event) {
    this.decrypt(event.receiver);
    const stream = event.streams[0];
    if (!stream || event.track.kind !== 'audio') return;
    // The server reuses a transceiver for someone else by taking the track out of one stream and
    // announcing it in another, so the stream, not the track, says who is speaking.
    this.emit('track', { peerId: stream.id, track: event.track });
    if (this.watchedStreams.has(stream)) return;
    this.watchedStreams.add(stream);
    stream.addEventListener('removetrack', (removed) => {
      this.emit('trackended', { peerId: stream.id, track: removed.track });
    });
  }

  /** @param {RTCDataChannel} channel */
  onDataChannel(channel) {
    if (channel.label !== 'heartbeat') return;
    channel.addEventListener('message', (event) => {
      if (event.data === 'ping' && channel.readyState === 'open') channel.send('pong');
    });
  }

  close() {
    this.closed = true;
    this.pc.close();
  }
}
