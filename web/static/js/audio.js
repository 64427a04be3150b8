// @ts-check
// The audio graph of one page.
//
//   microphone → micGain ─┬→ micAnalyser           (level meter, own voice activity)
//                         └→ sendDest              (the track sent to the server)
//   remote track → source ─┬→ analyser             (their voice activity, before the local volume)
//                          └→ gain → dest → <audio> (per-person volume 0–200 %)
//   cues → cueDest → <audio>                       (join/leave sounds)
//
// The graph only produces sound while the context runs. A context may stay suspended (no output device,
// an autoplay policy), and its sendDest track is then silent: until it runs, the page sends a copy of the
// microphone track instead (the "direct" path), which mute still silences but the gain cannot scale.
//
// Playback goes through <audio> elements, not ctx.destination: phones route media elements to the
// loudspeaker while the microphone is open (Web Audio output can end up on the earpiece), and
// setSinkId on elements picks the output device wherever the browser allows choosing one.

import { Emitter } from './events.js';

/**
 * One person's audio as this page plays it.
 * @typedef {object} Remote
 * @property {MediaStreamTrack} track
 * @property {MediaStreamAudioSourceNode} source
 * @property {AnalyserNode} analyser
 * @property {GainNode} gain
 * @property {HTMLAudioElement} element what plays it
 * @property {HTMLAudioElement} keepAlive muted, keeps the track flowing into Web Audio
 */
/**
 * The microphone settings the page offers.
 * @typedef {object} MicSettings
 * @property {string} [deviceId] '' for the default device
 * @property {boolean} [echoCancellation]
 * @property {boolean} [noiseSuppression]
 * @property {boolean} [autoGainControl]
 */

/**
 * @extends {Emitter<{
 *   sendtrack: { track: MediaStreamTrack | null },
 *   micended: undefined,
 *   blocked: undefined,
 *   error: { what: string },
 * }>}
 */
export class AudioEngine extends Emitter {
  /** @param {HTMLElement} sinkContainer where the <audio> elements go */
  constructor(sinkContainer) {
    super();
    this.sinks = sinkContainer;
    this.ctx = new AudioContext({ latencyHint: 'interactive' });
    /** @type {MediaStream | null} */
    this.micStream = null;
    /** @type {MediaStreamAudioSourceNode | null} */
    this.micSource = null;
    this.micGain = this.ctx.createGain();
    this.micAnalyser = this.ctx.createAnalyser();
    this.micAnalyser.fftSize = 1024;
    this.sendDest = this.ctx.createMediaStreamDestination();
    this.micGain.connect(this.micAnalyser);
    this.micGain.connect(this.sendDest);
    this.gainValue = 1;
    this.sending = true;
    /** @type {MediaStreamTrack | null} */
    this.directTrack = null;
    this.sent = this.sendTrack;
    this.ctx.addEventListener('statechange', () => this.updateSendPath());
    this.cueDest = this.ctx.createMediaStreamDestination();
    this.sinkId = '';
    /** @type {Map<string, Remote>} */
    this.remotes = new Map();
    /** @type {Map<string, number>} */
    this.volumes = new Map();
    this.cueElement = this.addElement(this.cueDest.stream, { role: 'cues' });
  }

  static get canChooseOutput() {
    return 'setSinkId' in HTMLMediaElement.prototype;
  }

  // 'graph' while the context runs (or before there is a microphone), 'direct' while it does not.
  /** @returns {'graph' | 'direct'} */
  get sendPath() {
    return this.ctx.state === 'running' || !this.directTrack ? 'graph' : 'direct';
  }

  // The track the peer connection should be sending now; 'sendtrack' fires whenever it changes.
  /** @returns {MediaStreamTrack | null} */
  get sendTrack() {
    return this.sendPath === 'graph' ? this.sendDest.stream.getAudioTracks()[0] : this.directTrack;
  }

  updateSendPath() {
    if (this.ctx.state === 'closed') return;
    const track = this.sendTrack;
    if (track === this.sent) return;
    this.sent = track;
    this.emit('sendtrack', { track });
  }

  get micDeviceId() {
    const track = this.micStream ? this.micStream.getAudioTracks()[0] : null;
    return track ? track.getSettings().deviceId || '' : '';
  }

  // (Re)open the microphone with these settings and splice it into the graph. On the graph path the sent
  // track belongs to the graph, so switching devices or processing never touches the peer connection; on
  // the direct path the new microphone's copy replaces the old one ('sendtrack').
  /** @param {MicSettings} [settings] */
  async openMic({ deviceId = '', echoCancellation = true, noiseSuppression = true, autoGainControl = true } = {}) {
    /** @type {MediaTrackConstraints} */
    const audio = { echoCancellation, noiseSuppression, autoGainControl };
    if (deviceId) audio.deviceId = { exact: deviceId };
    const stream = await navigator.mediaDevices.getUserMedia({ audio });
    const source = this.ctx.createMediaStreamSource(stream);
    source.connect(this.micGain);
    if (this.micSource) this.micSource.disconnect();
    if (this.micStream) for (const track of this.micStream.getTracks()) track.stop();
    this.micSource = source;
    this.micStream = stream;
    const [track] = stream.getAudioTracks();
    track.addEventListener('ended', () => {
      if (this.micStream === stream) this.emit('micended');
    });
    // A copy, so that muting what is sent never silences the level meter fed by the original.
    if (this.directTrack) this.directTrack.stop();
    this.directTrack = track.clone();
    this.applySending();
    this.updateSendPath();
  }

  /** @param {number} value 0..2 */
  setMicGain(value) {
    this.gainValue = value;
    this.micGain.gain.setTargetAtTime(value, this.ctx.currentTime, 0.02);
    this.applySending();
  }

  /** @param {boolean} on */
  setSending(on) {
    this.sending = on;
    this.applySending();
  }

  // Mute silences both paths. The direct path cannot scale the level, but a gain of 0 still means silence.
  applySending() {
    this.sendDest.stream.getAudioTracks()[0].enabled = this.sending;
    if (this.directTrack) this.directTrack.enabled = this.sending && this.gainValue > 0;
  }

  /**
   * @param {string} peerId
   * @param {MediaStreamTrack} track
   */
  attach(peerId, track) {
    const current = this.remotes.get(peerId);
    if (current && current.track === track) return;
    // A reused transceiver brings its track to a new person: whoever had it before no longer does.
    for (const [id, remote] of this.remotes) if (remote.track === track) this.detach(id);
    if (current) this.detach(peerId);
    const stream = new MediaStream([track]);
    // Chromium feeds a remote WebRTC track into Web Audio only while a media element plays it.
    const keepAlive = new Audio();
    keepAlive.muted = true;
    keepAlive.srcObject = stream;
    this.play(keepAlive);
    const source = this.ctx.createMediaStreamSource(stream);
    const analyser = this.ctx.createAnalyser();
    analyser.fftSize = 1024;
    const gain = this.ctx.createGain();
    gain.gain.value = this.volumes.get(peerId) ?? 1;
    const dest = this.ctx.createMediaStreamDestination();
    source.connect(analyser);
    source.connect(gain);
    gain.connect(dest);
    const element = this.addElement(dest.stream, { peerId });
    this.remotes.set(peerId, { track, source, analyser, gain, element, keepAlive });
  }

  /**
   * @param {string} peerId
   * @param {MediaStreamTrack | null} [track] only if this is still their track
   */
  detach(peerId, track = null) {
    const remote = this.remotes.get(peerId);
    if (!remote || (track && remote.track !== track)) return;
    this.remotes.delete(peerId);
    remote.source.disconnect();
    remote.gain.disconnect();
    for (const element of [remote.element, remote.keepAlive]) {
      element.pause();
      element.srcObject = null;
    }
    remote.element.remove();
  }

  detachAll() {
    for (const peerId of [...this.remotes.keys()]) this.detach(peerId);
  }

  /**
   * @param {string} peerId
   * @returns {AnalyserNode | null}
   */
  analyserFor(peerId) {
    const remote = this.remotes.get(peerId);
    return remote ? remote.analyser : null;
  }

  /**
   * @param {string} peerId
   * @param {number} value 0..2
   */
  setVolume(peerId, value) {
    this.volumes.set(peerId, value);
    const remote = this.remotes.get(peerId);
    if (remote) remote.gain.gain.setTargetAtTime(value, this.ctx.currentTime, 0.02);
  }

  /** @param {string} deviceId */
  async setOutput(deviceId) {
    this.sinkId = deviceId;
    const elements = [this.cueElement, ...[...this.remotes.values()].map((remote) => remote.element)];
    await Promise.all(elements.map((element) => element.setSinkId(deviceId)));
  }

  /**
   * @param {MediaStream} stream
   * @param {Record<string, string>} data for the element's dataset
   * @returns {HTMLAudioElement}
   */
  addElement(stream, data) {
    const element = document.createElement('audio');
    element.autoplay = true;
    element.srcObject = stream;
    Object.assign(element.dataset, data);
    this.sinks.append(element);
    if (this.sinkId) element.setSinkId(this.sinkId).catch(() => this.emitError('output_device'));
    this.play(element);
    return element;
  }

  // Autoplay may be refused until the person touches the page; resume() retries on each gesture.
  /** @param {HTMLMediaElement} element */
  play(element) {
    element.play().catch(() => this.emit('blocked'));
  }

  async resume() {
    if (this.ctx.state !== 'running' && this.ctx.state !== 'closed') await this.ctx.resume();
    const elements = [this.cueElement, ...[...this.remotes.values()].flatMap((r) => [r.element, r.keepAlive])];
    for (const element of elements) if (element.paused && element.srcObject) this.play(element);
  }

  /** @param {string} what */
  emitError(what) {
    this.emit('error', { what });
  }

  close() {
    this.detachAll();
    if (this.micStream) for (const track of this.micStream.getTracks()) track.stop();
    if (this.directTrack) this.directTrack.stop();
    this.micStream = null;
    this.cueElement.srcObject = null;
    this.cueElement.remove();
    return this.ctx.close();
  }
}
