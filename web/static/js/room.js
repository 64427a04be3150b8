// The room page: join form, then the room (people, controls, panels), wired to one RoomSession.
import { AudioEngine } from './audio.js';
import { Diagnostics } from './diagnostics.js';
import { setText, t } from './i18n.js';
import { checkNickname, micErrorKey, micUnavailable, openMicWithFallback } from './join.js';
import { Mixer, micOptions } from './mixer.js';
import { WakeLock, resumeOnGesture } from './mobile.js';
import { loadPref, savePref } from './prefs.js';
import { RoomSession } from './session.js';
import { playCue } from './sounds.js';
import { quality, StatsSampler } from './stats.js';
import { PeopleView, StatusBanner, show } from './ui.js';
import { VoiceActivity } from './vad.js';

const VAD_INTERVAL_MS = 80;
const PANELS = [['mixer-panel', 'btn-mixer'], ['diag-panel', 'btn-signal']];
const $ = (id) => document.getElementById(id);

export class RoomPage {
  constructor(data) {
    this.room = data.room;
    this.banner = new StatusBanner($('status'));
    this.people = new PeopleView(document);
    this.diagnostics = new Diagnostics($('diag-panel'));
    this.wakeLock = new WakeLock();
    this.session = null;
    this.engine = null;
    this.mixer = null;
    this.sampler = null;
    this.vads = new Map();
    this.joining = false;
    document.title = t('title_room', { room: this.room });
    document.querySelector('title').dataset.i18nVars = JSON.stringify({ room: this.room });
    // Only fill an empty field: someone may have typed before the scripts finished loading.
    if (!$('nickname').value) $('nickname').value = loadPref('nickname', '');
    $('join-form').addEventListener('submit', (event) => {
      event.preventDefault();
      this.join();
    });
    $('btn-mute').addEventListener('click', () => this.toggleMute());
    $('btn-leave').addEventListener('click', () => this.leave());
    $('btn-copy').addEventListener('click', () => this.copyInvite());
    $('btn-mixer').addEventListener('click', () => this.togglePanel('mixer-panel', 'btn-mixer'));
    $('btn-signal').addEventListener('click', () => this.togglePanel('diag-panel', 'btn-signal'));
    $('btn-copy-diag').addEventListener('click', () => this.copyDiagnostics());
    for (const [panel, button] of PANELS) {
      const close = $(panel).querySelector('[data-close-panel]');
      close.addEventListener('click', () => this.togglePanel(panel, button, false));
    }
    document.addEventListener('keydown', (event) => this.onKey(event));
    // Closing the tab must tell the server at once, not after the heartbeat times out.
    window.addEventListener('pagehide', () => {
      this.hiddenInRoom = Boolean(this.session);
      this.leave({ quiet: true });
    });
    // Restored from the back/forward cache after leaving that way: start clean rather than half-joined.
    window.addEventListener('pageshow', (event) => {
      if (event.persisted && this.hiddenInRoom) window.location.reload();
    });
    $('btn-join').disabled = false;
    if (window.__E2E__) window.__getPeerCount = () => (this.session ? this.session.peers.size : 0);
  }

  formError(key, vars) {
    const el = $('join-error');
    if (key) setText(el, key, vars);
    show(el, Boolean(key));
  }

  async join() {
    if (this.joining || this.session) return;
    const checked = checkNickname($('nickname').value);
    if (checked.error) {
      this.formError(checked.error);
      $('nickname').focus();
      return;
    }
    const unavailable = micUnavailable();
    if (unavailable) {
      this.formError(unavailable);
      return;
    }
    this.formError(null);
    this.joining = true;
    $('btn-join').disabled = true;
    // Created inside the click so that the browser lets it start without another gesture.
    const engine = new AudioEngine($('audio-sinks'));
    try {
      await openMicWithFallback(engine, micOptions());
    } catch (error) {
      engine.close();
      this.joining = false;
      $('btn-join').disabled = false;
      this.formError(micErrorKey(error), { name: error && error.name ? error.name : String(error) });
      return;
    }
    savePref('nickname', checked.name);
    this.enter(engine, checked.name);
  }

  enter(engine, name) {
    this.engine = engine;
    this.joining = false;
    engine.addEventListener('blocked', () => this.banner.show('audio_blocked', null, 'warn'));
    engine.addEventListener('micended', () => this.onMicLost());
    engine.addEventListener('error', () => this.banner.show('err_output_device', null, 'warn'));
    engine.ctx.addEventListener('statechange', () => this.showSendPath());
    this.showSendPath();
    this.mixer = new Mixer(document, engine);
    this.mixer.addEventListener('error', (event) => {
      this.banner.show(event.detail.key, null, 'warn');
      this.diagnostics.update({ lastError: String(event.detail.error) });
    });
    this.stopGestures = resumeOnGesture(() => this.resumeAudio());
    this.vads.set('self', new VoiceActivity(engine.micAnalyser));
    this.vadTimer = window.setInterval(() => this.tickVoice(), VAD_INTERVAL_MS);

    const session = new RoomSession({ room: this.room, name, engine });
    this.session = session;
    session.addEventListener('peers', (event) => this.onPeers(event.detail));
    session.addEventListener('joined', () => this.banner.hideIf('connecting', 'reconnecting'));
    session.addEventListener('reconnecting', (event) => {
      this.banner.show('reconnecting', { seconds: (event.detail.delay / 1000).toFixed(1) }, 'warn');
      const { reason, detail } = event.detail;
      const why = t(`reason_${reason}`);
      this.diagnostics.update({ lastError: detail ? `${why}: ${detail}` : why });
    });
    session.addEventListener('fatal', (event) => this.onFatal(event.detail));
    session.addEventListener('problem', (event) => this.diagnostics.update({ lastError: event.detail.message }));
    session.addEventListener('turnrefused', (event) => {
      this.banner.show('turn_refused', { code: event.detail.code }, 'warn');
      this.diagnostics.update({ lastError: `${event.detail.url}: ${event.detail.code} ${event.detail.text}` });
    });
    session.addEventListener('transport', () => this.onTransport());
    session.addEventListener('link', (event) => this.onLink(event.detail.link));
    session.addEventListener('audio', () => this.syncVoices());

    $('btn-join').disabled = false;
    show($('join-view'), false);
    show($('room-view'), true);
    this.setMuteButton(false);
    this.wakeLock.acquire();
    this.banner.show('connecting', null, 'info');
    session.connect();
  }

  // Whether the microphone goes through the audio graph or, while that cannot run, straight to the call.
  showSendPath() {
    const { engine } = this;
    if (!engine) return; // the context closing after the person left
    const direct = engine.sendPath === 'direct';
    this.diagnostics.update({
      audioPath: { key: direct ? 'diag_path_direct' : 'diag_path_graph', vars: { state: engine.ctx.state } },
    });
  }

  onPeers({ joined, left }) {
    const session = this.session;
    if (!session) return;
    this.people.render(session.peers, session.selfId);
    this.mixer.syncPeople(session.peers, session.selfId);
    this.syncVoices();
    if (joined && joined.id !== session.selfId) playCue(this.engine.ctx, this.engine.cueDest, 'join');
    if (left) playCue(this.engine.ctx, this.engine.cueDest, 'leave');
  }

  // One voice-activity detector per person whose audio we have, plus our own microphone.
  syncVoices() {
    if (!this.engine) return;
    for (const id of [...this.vads.keys()]) {
      if (id !== 'self' && this.engine.analyserFor(id) !== this.vads.get(id).analyser) {
        this.vads.delete(id);
        this.people.setSpeaking(id, false);
      }
    }
    for (const id of this.engine.remotes.keys()) {
      if (!this.vads.has(id)) this.vads.set(id, new VoiceActivity(this.engine.analyserFor(id)));
    }
  }

  tickVoice() {
    const now = performance.now();
    const session = this.session;
    for (const [id, vad] of this.vads) {
      const changed = vad.update(now);
      if (id === 'self') {
        this.mixer.updateMeter(vad.db);
        if (session && session.selfId) this.people.setSpeaking(session.selfId, vad.speaking && !session.muted);
      } else if (changed) {
        this.people.setSpeaking(id, vad.speaking);
      }
    }
  }

  onLink(link) {
    if (this.sampler) this.sampler.stop();
    this.sampler = new StatsSampler(link.pc, (sample) => this.onSample(sample));
  }

  onSample(sample) {
    this.diagnostics.update(Diagnostics.fromSample(sample));
    $('signal-bars').dataset.quality = quality(sample);
    const text = $('signal-text');
    if (sample.rttMs === null) setText(text, 'signal_unknown');
    else {
      setText(text, 'signal_summary', {
        rtt: sample.rttMs,
        loss: (sample.lossPct ?? 0).toFixed(0),
        jitter: sample.jitterMs ?? 0,
      });
    }
  }

  onTransport() {
    const session = this.session;
    if (!session) return;
    const link = session.link;
    this.diagnostics.update({
      websocket: session.socketState,
      ice: link ? link.iceState : 'closed',
      connection: link ? link.connectionState : 'closed',
    });
    if (link && link.iceState === 'disconnected') this.banner.show('ice_unstable', null, 'warn');
    else if (link && ['connected', 'completed'].includes(link.iceState)) {
      this.banner.hideIf('connecting', 'reconnecting', 'ice_unstable');
    }
  }

  onFatal({ key, vars }) {
    this.diagnostics.update({ lastError: t(key, vars) });
    this.leave({ quiet: true });
    this.formError(key, vars);
  }

  onMicLost() {
    this.banner.show('err_mic_lost', null, 'warn');
    openMicWithFallback(this.engine, { ...micOptions(), deviceId: '' })
      .then(() => this.banner.hideIf('err_mic_lost'))
      .catch((error) => this.diagnostics.update({ lastError: String(error) }));
  }

  resumeAudio() {
    if (!this.engine) return;
    this.engine.resume().then(() => {
      this.banner.hideIf('audio_blocked');
    }).catch(() => {});
  }

  toggleMute() {
    if (!this.session) return;
    const muted = !this.session.muted;
    this.session.setMuted(muted);
    this.setMuteButton(muted);
  }

  setMuteButton(muted) {
    const button = $('btn-mute');
    button.setAttribute('aria-pressed', String(muted));
    button.classList.toggle('is-active', muted);
    setText(button.querySelector('.ctl-label'), muted ? 'unmute' : 'mute');
  }

  onKey(event) {
    if (!this.session || event.repeat || event.ctrlKey || event.metaKey || event.altKey) return;
    const target = event.target;
    if (target instanceof HTMLElement && target.closest('input, textarea, select, [contenteditable]')) return;
    if (event.key === 'm' || event.key === 'M') {
      event.preventDefault();
      this.toggleMute();
    } else if (event.key === 'Escape') {
      for (const [panel, button] of PANELS) this.togglePanel(panel, button, false);
    }
  }

  togglePanel(panelId, buttonId, force) {
    const panel = $(panelId);
    const open = force ?? panel.classList.contains('hidden');
    // One panel at a time: on a phone two would cover the whole room.
    if (open) {
      for (const [other, otherButton] of PANELS) {
        if (other !== panelId) this.togglePanel(other, otherButton, false);
      }
    }
    show(panel, open);
    const button = $(buttonId);
    button.setAttribute('aria-expanded', String(open));
    if (open) panel.querySelector('input, select, button').focus();
    else if (panel.contains(document.activeElement)) button.focus();
  }

  async copyInvite() {
    const link = `${window.location.origin}/r/${this.room}`;
    const label = $('btn-copy').querySelector('.ctl-label');
    try {
      await navigator.clipboard.writeText(link);
    } catch {
      this.banner.show('copy_manual', { link }, 'info');
      return;
    }
    $('btn-copy').classList.add('is-done');
    setText(label, 'copied');
    this.banner.show('copied_banner', null, 'ok');
    window.clearTimeout(this.copiedTimer);
    this.copiedTimer = window.setTimeout(() => {
      $('btn-copy').classList.remove('is-done');
      setText(label, 'copy_link');
      this.banner.hideIf('copied_banner');
    }, 2000);
  }

  async copyDiagnostics() {
    const button = $('btn-copy-diag');
    try {
      await navigator.clipboard.writeText(this.diagnostics.text());
      setText(button, 'copied');
    } catch {
      setText(button, 'copy_failed');
    }
    window.setTimeout(() => setText(button, 'copy_diagnostics'), 2000);
  }

  leave({ quiet = false } = {}) {
    const session = this.session;
    if (!session) return;
    this.session = null;
    session.stop();
    if (this.sampler) this.sampler.stop();
    this.sampler = null;
    window.clearInterval(this.vadTimer);
    this.vads.clear();
    if (this.stopGestures) this.stopGestures();
    this.mixer.close();
    this.engine.close();
    this.engine = null;
    this.wakeLock.release();
    this.people.clear();
    for (const [panel, button] of PANELS) this.togglePanel(panel, button, false);
    show($('room-view'), false);
    show($('join-view'), true);
    this.banner.hide();
    if (!quiet) this.banner.show('left_room', null, 'info');
  }
}
