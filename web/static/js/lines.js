// @ts-check
// The forwarding lines of a room past ten people. Such a room forwards each listener only its loudest
// few, on lines whose MediaStream id is a label (LINE_PREFIX + i) rather than a person; the server says
// by signaling (`forwarding`) whom each line carries now, and this routes the line's track to that
// person's place in the audio graph, so that tiles, volumes and voice activity stay per person.
import { LINE_PREFIX } from './contract.js';

/** @typedef {import('./audio.js').AudioEngine} AudioEngine */

/** @param {string} streamId */
export function isLine(streamId) {
  return streamId.startsWith(LINE_PREFIX);
}

export class ForwardingLines {
  /**
   * @param {AudioEngine} engine
   * @param {() => string | null} selfId who this page is (never given a line's track)
   */
  constructor(engine, selfId) {
    this.engine = engine;
    this.selfId = selfId;
    /** @type {Map<string, MediaStreamTrack>} */
    this.tracks = new Map();
    /** @type {Map<string, string | null>} */
    this.speakers = new Map();
  }

  /**
   * A line's track has arrived.
   * @param {string} label
   * @param {MediaStreamTrack} track
   */
  add(label, track) {
    this.tracks.set(label, track);
    this.route(label);
  }

  /**
   * A line's track has ended.
   * @param {string} label
   * @param {MediaStreamTrack} track
   */
  remove(label, track) {
    if (this.tracks.get(label) === track) this.tracks.delete(label);
    this.detach(track);
  }

  /**
   * Whom every line carries now (the server sends all of them whenever one changes).
   * @param {unknown} lines line label -> peer id or null
   */
  update(lines) {
    if (!lines || typeof lines !== 'object') return;
    const previous = this.speakers;
    this.speakers = new Map();
    for (const [label, peerId] of Object.entries(/** @type {Record<string, unknown>} */ (lines))) {
      if (typeof peerId === 'string' || peerId === null) this.speakers.set(label, peerId);
    }
    for (const label of new Set([...previous.keys(), ...this.speakers.keys()])) {
      if (previous.get(label) !== this.speakers.get(label)) this.route(label);
    }
  }

  clear() {
    this.tracks = new Map();
    this.speakers = new Map();
  }

  /**
   * The person a line carries gets its track (and whoever had it loses it).
   * @param {string} label
   */
  route(label) {
    const track = this.tracks.get(label);
    if (!track) return;
    const peerId = this.speakers.get(label);
    if (peerId && peerId !== this.selfId()) this.engine.attach(peerId, track);
    else this.detach(track);
  }

  /** @param {MediaStreamTrack} track */
  detach(track) {
    for (const [peerId, remote] of [...this.engine.remotes]) {
      if (remote.track === track) this.engine.detach(peerId, track);
    }
  }
}
