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

export class AudioEngine extends EventTarget {
  constructor(sinkContainer) {
    super();
    this.sinks = sinkContainer;
    this.ctx = new AudioContext({ latencyHint: 'interactive' });
    this.micStream = null;
    this.micSource = null;
    this.micGain = this.ctx.createGain();
    this.micAnalyser = this.ctx.createAnalyser();
    this.micAnalyser.fftSize = 1024;
    this.sendDest = this.ctx.createMediaStreamDestination();
    this.micGain.connect(this.micAnalyser);
    this.micGain.connect(this.sendDest);
    this.gainValue = 1;
    this.sending = true;
    this.directTrack = null;
    this.sent = this.sendTrack;
    this.ctx.addEventListener('statechange', () => this.updateSendPath());
    this.cueDest = this.ctx.createMediaStreamDestination();
    this.sinkId = '';
    this.remotes = new Map();
    this.volumes = new Map();
    this.cueElement = this.addElement(this.cueDest.stream, { role: 'cues' });
  }

  static get canChooseOutput() {
    return 'setSinkId' in HTMLMediaElement.prototype;
  }

  // 'graph' while the context runs (or before there is a microphone), 'direct' while it does not.
  get sendPath() {
    return this.ctx.state === 'running' || !this.directTrack ? 'graph' : 'direct';
  }

  // The track the peer connection should be sending now; 'sendtrack' fires whenever it changes.
  get sendTrack() {
    return this.sendPath === 'graph' ? this.sendDest.stream.getAudioTracks()[0] : this.directTrack;
  }

  updateSendPath() {
    if (this.ctx.state === 'closed') return;
    const track = this.sendTrack;
    if (track === this.sent) return;
    this.sent = track;
    this.dispatchEvent(new CustomEvent('sendtrack', { detail: { track } }));
  }

  get micDeviceId() {
    const track = this.micStream ? this.micStream.getAudioTracks()[0] : null;
    return track ? track.getSettings().deviceId || '' : '';
  }

  // (Re)open the microphone with these settings and splice it into the graph. On the graph path the sent
  // track belongs to the graph, so switching devices or processing never touches the peer connection; on
  // the direct path the new microphone's copy replaces the old one ('sendtrack').
  async openMic({ deviceId = '', echoCancellation = true, noiseSuppression = true, autoGainControl = true } = {}) {
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
      if (this.micStream === stream) this.dispatchEvent(new CustomEvent('micended'));
    });
    // A copy, so that muting what is sent never silences the level meter fed by the original.
    if (this.directTrack) this.directTrack.stop();
    this.directTrack = track.clone();
    this.applySending();
    this.updateSendPath();
  }

  setMicGain(value) {
    this.gainValue = value;
    this.micGain.gain.setTargetAtTime(value, this.ctx.currentTime, 0.02);
    this.applySending();
  }

  setSending(on) {
    this.sending = on;
    this.applySending();
  }

  // Mute silences both paths. The direct path cannot scale the level, but a gain of 0 still means silence.
  applySending() {
    this.sendDest.stream.getAudioTracks()[0].enabled = this.sending;
    if (this.directTrack) this.directTrack.enabled = this.sending && this.gainValue > 0;
  }

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
    gain.gain.value = this.volumes.has(peerId) ? this.volumes.get(peerId) : 1;
    const dest = this.ctx.createMediaStreamDestination();
    source.connect(analyser);
    source.connect(gain);
    gain.connect(dest);
    const element = this.addElement(dest.stream, { peerId });
    this.remotes.set(peerId, { track, source, analyser, gain, element, keepAlive });
  }

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

  analyserFor(peerId) {
    const remote = this.remotes.get(peerId);
    return remote ? remote.analyser : null;
  }

  setVolume(peerId, value) {
    this.volumes.set(peerId, value);
    const remote = this.remotes.get(peerId);
    if (remote) remote.gain.gain.setTargetAtTime(value, this.ctx.currentTime, 0.02);
  }

  async setOutput(deviceId) {
    this.sinkId = deviceId;
    const elements = [this.cueElement, ...[...this.remotes.values()].map((remote) => remote.element)];
    await Promise.all(elements.map((element) => element.setSinkId(deviceId)));
  }

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
  play(element) {
    element.play().catch(() => this.dispatchEvent(new CustomEvent('blocked')));
  }

  async resume() {
    if (this.ctx.state !== 'running' && this.ctx.state !== 'closed') await this.ctx.resume();
    const elements = [this.cueElement, ...[...this.remotes.values()].flatMap((r) => [r.element, r.keepAlive])];
    for (const element of elements) if (element.paused && element.srcObject) this.play(element);
  }

  emitError(what) {
    this.dispatchEvent(new CustomEvent('error', { detail: { what } }));
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
