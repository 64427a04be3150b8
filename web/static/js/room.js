// @ts-check
// The room page: join form, then the room (people, controls, panels), wired to one RoomSession.
import { AudioEngine } from './audio.js';
import { ChatPanel } from './chat.js';
import { Diagnostics } from './diagnostics.js';
import { byId, find } from './dom.js';
import { setText, t } from './i18n.js';
import { HostView } from './host-view.js';
import { checkNickname, errorName, micErrorKey, micUnavailable, openMicWithFallback } from './join.js';
import { LeaveButton } from './leave.js';
import { Mixer, micOptions } from './mixer.js';
import { WakeLock, resumeOnGesture } from './mobile.js';
import { NetworkPill } from './network-pill.js';
import { loadPref, savePref } from './prefs.js';
import { RoomPrivacy } from './privacy.js';
import { RoomSession } from './session.js';
import { playCue } from './sounds.js';
import { Talk } from './talk.js';
import { PeopleView, StatusBanner, show } from './ui.js';
import { VoiceActivity, levelIsSpeaking } from './vad.js';

/** @typedef {import('./session.js').Peer} Peer */
/** @typedef {import('./i18n.js').Vars} Vars */

const VAD_INTERVAL_MS = 80;
/** @type {[string, string][]} panel id, id of the button that opens it */
const PANELS = [['mixer-panel', 'btn-mixer'], ['diag-panel', 'btn-signal'], ['chat-panel', 'btn-chat']];
const $ = byId;
const nickname = () => byId('nickname', HTMLInputElement);
const joinButton = () => byId('btn-join', HTMLButtonElement);

export class RoomPage {
  /** @param {{ room: string }} data what the server put in the page */
  constructor(data) {
    this.room = data.room;
    this.banner = new StatusBanner($('status'));
    this.people = new PeopleView();
    this.diagnostics = new Diagnostics($('diag-panel'));
    this.pill = new NetworkPill(this.diagnostics);
    this.chat = new ChatPanel(); // one for the page's life: its history outlives reconnects and rejoins
    this.privacy = new RoomPrivacy(this.room, this.diagnostics);
    this.wakeLock = new WakeLock();
    // Set while in the room (from enter() to leave()), null before and after.
    /** @type {RoomSession | null} */
    this.session = null;
    /** @type {AudioEngine | null} */
    this.engine = null;
    /** @type {Mixer | null} */
    this.mixer = null;
    /** @type {(() => void) | null} */
    this.stopGestures = null;
    /** @type {Map<string, VoiceActivity>} 'self' or a peer id */
    this.vads = new Map();
    this.vadTimer = 0;
    this.copiedTimer = 0;
    this.hiddenInRoom = false;
    this.joining = false;
    document.title = t('title_room', { room: this.room });
    find(document, 'title', HTMLTitleElement).dataset.i18nVars = JSON.stringify({ room: this.room });
    // Only fill an empty field: someone may have typed before the scripts finished loading.
    if (!nickname().value) nickname().value = loadPref('nickname', '');
    $('join-form').addEventListener('submit', (event) => {
      event.preventDefault();
      void this.join();
    });
    // Mute, push-to-talk and the room's keys (M, Space, Escape); Leave asks first while others are here.
    this.talk = new Talk({ showMute: (muted) => this.setMuteButton(muted), closePanels: () => this.closePanels() });
    this.leaveButton = new LeaveButton(() => this.session, () => this.leave());
    this.hostView = new HostView({ people: this.people, banner: this.banner, leave: () => this.leave(),
      mute: () => { if (!this.talk.chosenMuted) this.toggleMute(); } });
    $('btn-mute').addEventListener('click', () => this.toggleMute());
    $('btn-copy').addEventListener('click', () => void this.copyInvite());
    $('btn-copy-diag').addEventListener('click', () => void this.diagnostics.copy($('btn-copy-diag')));
    for (const [panel, button] of PANELS) {
      $(button).addEventListener('click', () => this.togglePanel(panel, button));
      find($(panel), '[data-close-panel]').addEventListener('click', () => this.togglePanel(panel, button, false));
    }
    // Closing the tab must tell the server at once, not after the heartbeat times out.
    window.addEventListener('pagehide', () => {
      this.hiddenInRoom = Boolean(this.session);
      this.leave({ quiet: true });
    });
    // Restored from the back/forward cache after leaving that way: start clean rather than half-joined.
    window.addEventListener('pageshow', (event) => {
      if (event.persisted && this.hiddenInRoom) window.location.reload();
    });
    joinButton().disabled = !this.privacy.canJoin;
  }

  /**
   * @param {string | null} key the message, null to hide it
   * @param {Vars} [vars]
   */
  formError(key, vars) {
    const el = $('join-error');
    if (key) setText(el, key, vars);
    show(el, Boolean(key));
  }

  // Never rejects: every failure is shown in the form.
  async join() {
    if (this.joining || this.session || !this.privacy.canJoin) return;
    const checked = checkNickname(nickname().value);
    if (checked.error !== undefined) {
      this.formError(checked.error);
      nickname().focus();
      return;
    }
    const unavailable = micUnavailable();
    if (unavailable) {
      this.formError(unavailable);
      return;
    }
    this.formError(null);
    this.joining = true;
    joinButton().disabled = true;
    // Created inside the click so that the browser lets it start without another gesture.
    const engine = new AudioEngine($('audio-sinks'));
    let crypto = null;
    try {
      await openMicWithFallback(engine, micOptions());
      crypto = await this.privacy.crypto(); // made as the page loaded: no wait
    } catch (error) {
      void engine.close().catch(() => {});
      this.joining = false;
      joinButton().disabled = false;
      this.formError(micErrorKey(error), { name: errorName(error) || String(error) });
      return;
    }
    savePref('nickname', checked.name);
    this.enter(engine, checked.name, crypto);
  }

  /**
   * @param {AudioEngine} engine with the microphone open
   * @param {string} name the checked nickname
   * @param {import('./e2ee.js').RoomCrypto | null} crypto an encrypted room's keys
   */
  enter(engine, name, crypto) {
    this.engine = engine;
    this.joining = false;
    engine.on('blocked', () => this.banner.show('audio_blocked', null, 'warn'));
    engine.on('micended', () => this.onMicLost());
    engine.on('error', () => this.banner.show('err_output_device', null, 'warn'));
    engine.ctx.addEventListener('statechange', () => this.showSendPath());
    this.showSendPath();
    const mixer = new Mixer(engine);
    this.mixer = mixer;
    mixer.on('error', ({ key, error }) => {
      this.banner.show(key, null, 'warn');
      this.diagnostics.update({ lastError: String(error) });
    });
    this.stopGestures = resumeOnGesture(() => this.resumeAudio());
    this.vads.set('self', mixer.voice);
    this.vadTimer = window.setInterval(() => this.tickVoice(), VAD_INTERVAL_MS);

    const session = new RoomSession({ room: this.room, name, engine, crypto });
    this.session = session;
    session.on('peers', (change) => this.onPeers(change));
    session.on('joined', () => this.banner.hideIf('connecting', 'reconnecting'));
    session.on('reconnecting', ({ reason, detail, delay }) => {
      this.banner.show('reconnecting', { seconds: (delay / 1000).toFixed(1) }, 'warn');
      const why = t(`reason_${reason}`);
      this.diagnostics.update({ lastError: detail ? `${why}: ${detail}` : why });
    });
    session.on('fatal', (fatal) => this.onFatal(fatal));
    session.on('problem', ({ message }) => this.diagnostics.update({ lastError: message }));
    session.on('turnrefused', ({ url, code, text }) => {
      this.banner.show('turn_refused', { code }, 'warn');
      this.diagnostics.update({ lastError: `${url}: ${code} ${text}` });
    });
    session.on('transport', () => this.onTransport());
    session.on('link', ({ link }) => this.pill.attach(link));
    session.on('audio', () => this.syncVoices());
    session.on('levels', ({ levels }) => this.onLevels(levels));
    this.chat.attach(session);
    this.hostView.attach(session, engine);

    joinButton().disabled = false;
    show($('join-view'), false);
    show($('room-view'), true);
    this.talk.attach(session);
    $('btn-mute').focus(); // the room's controls, not the page body the Join button leaves it on
    void this.wakeLock.acquire();
    this.banner.show('connecting', null, 'info');
    void session.connect();
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

  /** @param {{ joined?: Peer, left?: Peer }} change */
  onPeers({ joined, left }) {
    const { session, mixer, engine } = this;
    if (!session || !mixer || !engine) return;
    this.people.render(session.peers, session.selfId);
    mixer.syncPeople(session.peers, session.selfId);
    this.syncVoices();
    if (joined && joined.id !== session.selfId) playCue(engine.ctx, engine.cueDest, 'join');
    if (left) playCue(engine.ctx, engine.cueDest, 'leave');
  }

  // One voice-activity detector per person whose audio we have, plus our own microphone.
  syncVoices() {
    const { engine } = this;
    if (!engine) return;
    for (const [id, vad] of [...this.vads]) {
      if (id !== 'self' && engine.analyserFor(id) !== vad.analyser) {
        this.vads.delete(id);
        this.people.setSpeaking(id, false);
      }
    }
    for (const [id, remote] of engine.remotes) {
      if (!this.vads.has(id)) this.vads.set(id, new VoiceActivity(remote.analyser));
    }
  }

  // Who speaks, from the server, among those a big room does not forward here (the rest: our own detector).
  /** @param {Map<string, number>} levels */
  onLevels(levels) {
    const engine = this.engine;
    for (const [id, level] of levels) {
      if (!engine || !engine.remotes.has(id)) this.people.setSpeaking(id, levelIsSpeaking(level));
    }
  }

  tickVoice() {
    const now = performance.now();
    const session = this.session;
    for (const [id, vad] of this.vads) {
      const changed = vad.update(now);
      if (id === 'self') {
        if (this.mixer) this.mixer.updateMeter(vad.db);
        if (session && session.selfId) this.people.setSpeaking(session.selfId, vad.speaking && !session.muted);
      } else if (changed) {
        this.people.setSpeaking(id, vad.speaking);
      }
    }
  }

  onTransport() {
    const session = this.session;
    if (!session) return;
    const link = session.link;
    this.pill.update(session.socketState, link);
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

  /** @param {{ key: string, vars?: Vars }} fatal */
  onFatal({ key, vars }) {
    this.diagnostics.update({ lastError: t(key, vars) });
    this.leave({ quiet: true });
    this.formError(key, vars);
    this.hostView.showFatal(key);
  }

  onMicLost() {
    if (!this.engine) return;
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

  // The person's own choice; whether the room hears them also depends on push-to-talk (talk.js).
  toggleMute() {
    this.talk.toggleMute();
  }

  // One name ("Mute") and a pressed state: a screen reader says "Mute, pressed", never "Unmute, pressed".
  /** @param {boolean} muted */
  setMuteButton(muted) {
    const button = $('btn-mute');
    button.setAttribute('aria-pressed', String(muted));
    button.classList.toggle('is-active', muted);
  }

  closePanels() {
    for (const [panel, button] of PANELS) this.togglePanel(panel, button, false);
  }

  /**
   * @param {string} panelId
   * @param {string} buttonId
   * @param {boolean} [force] open (true) or close (false) rather than toggle
   */
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
    if (open) find(panel, 'input, select, button').focus();
    else if (panel.contains(document.activeElement)) button.focus();
  }

  // Never rejects: without the clipboard the banner shows the link to copy by hand.
  async copyInvite() {
    const link = this.privacy.inviteLink();
    const label = find($('btn-copy'), '.ctl-label');
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

  /** @param {{ quiet?: boolean }} [options] quiet: no "you left" banner */
  leave({ quiet = false } = {}) {
    const session = this.session;
    if (!session) return;
    this.session = null;
    if (!quiet) session.hosting.forget(); // leaving on purpose (not a reload) gives the host's role up for good
    session.stop();
    this.pill.stop();
    window.clearInterval(this.vadTimer);
    this.vads.clear();
    if (this.stopGestures) this.stopGestures();
    if (this.mixer) this.mixer.close();
    if (this.engine) void this.engine.close().catch(() => {});
    this.engine = null;
    this.wakeLock.release();
    this.people.clear();
    this.talk.detach();
    this.hostView.detach();
    this.leaveButton.close();
    this.closePanels();
    show($('room-view'), false);
    show($('join-view'), true);
    this.banner.hide();
    if (!quiet) this.banner.show('left_room', null, 'info');
  }
}
