// @ts-check
// Whether the room hears this microphone, and the room's keys. Two things decide it: the person's own Mute
// choice, and push-to-talk (a Mixer setting): while that is on, the microphone sends only while Space or the
// "Hold to talk" button is held, and the room sees the person as muted otherwise. The two stay apart:
// holding Space never undoes a Mute the person chose.
import { byId, find } from './dom.js';
import { setText } from './i18n.js';
import { loadPref, savePref } from './prefs.js';
import { show } from './ui.js';

/** @typedef {import('./session.js').RoomSession} RoomSession */
/** @typedef {'key' | 'button'} Holder what holds push-to-talk down */

// Inputs Space does nothing in, or acts on the control alone (a checkbox, a slider): there Space talks.
const NOT_TYPED = new Set(['button', 'checkbox', 'color', 'file', 'image', 'radio', 'range', 'reset', 'submit']);

/**
 * Whether Space belongs to the focused element: typing (text fields, contenteditable), choosing (selects), a
 * dialog's buttons, and the push-to-talk checkbox itself, so that the keyboard can turn it off again.
 * @param {EventTarget | null} target
 * @returns {boolean}
 */
function keepsSpace(target) {
  if (!(target instanceof HTMLElement)) return false;
  if (target.isContentEditable || target.closest('textarea, select, dialog')) return true;
  return target instanceof HTMLInputElement && (!NOT_TYPED.has(target.type) || target.id === 'ptt-toggle');
}

/** @param {KeyboardEvent} event */
const isSpace = (event) => event.code === 'Space' || event.key === ' ';

export class Talk {
  /**
   * @param {object} page what the room page does for these keys
   * @param {(muted: boolean) => void} page.showMute shows the person's own Mute choice on its button
   * @param {() => void} page.closePanels Escape
   */
  constructor({ showMute, closePanels }) {
    this.showMute = showMute;
    this.closePanels = closePanels;
    /** @type {RoomSession | null} */
    this.session = null;
    this.chosenMuted = false;
    /** @type {unknown} */
    const stored = loadPref('pushToTalk', null);
    this.pushToTalk = stored === true;
    /** @type {Set<Holder>} */
    this.held = new Set();
    this.toggle = byId('ptt-toggle', HTMLInputElement);
    this.button = byId('btn-talk');
    this.toggle.checked = this.pushToTalk;
    this.toggle.addEventListener('change', () => {
      this.pushToTalk = this.toggle.checked;
      savePref('pushToTalk', this.pushToTalk);
      this.held.clear();
      this.apply();
    });
    // Capture, on the window: a release must be seen even if the focused element keeps its keys to itself.
    window.addEventListener('keydown', (event) => this.onKeyDown(event), true);
    window.addEventListener('keyup', (event) => this.onKeyUp(event), true);
    this.button.addEventListener('pointerdown', (event) => {
      if (event.button !== 0) return;
      // Captured, the release arrives here even when the finger slides off the button.
      this.button.setPointerCapture(event.pointerId);
      this.hold('button', true);
    });
    for (const type of ['pointerup', 'pointercancel', 'lostpointercapture']) {
      this.button.addEventListener(type, () => this.hold('button', false));
    }
    // A long press must not open the context menu (or select text) instead of talking.
    this.button.addEventListener('contextmenu', (event) => event.preventDefault());
    // A release the page never sees (another window took the focus, the tab went away) must not leave the
    // microphone open.
    window.addEventListener('blur', () => this.releaseAll());
    document.addEventListener('visibilitychange', () => {
      if (document.hidden) this.releaseAll();
    });
    this.render();
  }

  // Whether the room hears the microphone now.
  get talking() {
    return !this.chosenMuted && (!this.pushToTalk || this.held.size > 0);
  }

  /**
   * A new visit to the room: unmuted, as every visit starts.
   * @param {RoomSession} session
   */
  attach(session) {
    this.session = session;
    this.chosenMuted = false;
    this.held.clear();
    this.apply();
  }

  detach() {
    this.session = null;
    this.held.clear();
    this.render();
  }

  toggleMute() {
    if (!this.session) return;
    this.chosenMuted = !this.chosenMuted;
    this.apply();
  }

  /**
   * @param {Holder} holder
   * @param {boolean} down
   */
  hold(holder, down) {
    if (down === this.held.has(holder)) return;
    if (down) this.held.add(holder);
    else this.held.delete(holder);
    this.apply();
  }

  releaseAll() {
    if (this.held.size === 0) return;
    this.held.clear();
    this.apply();
  }

  // The session both stops sending and tells the room (muted); it only hears of actual changes.
  apply() {
    const session = this.session;
    if (session && session.muted === this.talking) session.setMuted(!this.talking);
    this.render();
  }

  render() {
    this.showMute(this.chosenMuted);
    show(byId('ptt-bar'), Boolean(this.session) && this.pushToTalk);
    const held = this.held.size > 0;
    const button = this.button;
    button.classList.toggle('is-talking', held && this.talking);
    button.setAttribute('aria-pressed', String(held));
    button.setAttribute('aria-disabled', String(this.chosenMuted));
    const label = find(button, '.ptt-label');
    setText(label, this.chosenMuted ? 'ptt_muted' : held ? 'ptt_talking' : 'ptt_hold');
  }

  /** @param {KeyboardEvent} event */
  onKeyDown(event) {
    if (!this.session || event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.key === 'Escape') {
      // Whatever has the focus (a slider, a select) and however it got there; a dialog handles its own.
      if (!(event.target instanceof Element && event.target.closest('dialog'))) this.closePanels();
      return;
    }
    if (isSpace(event) && this.pushToTalk && !keepsSpace(event.target)) {
      // Not a click on the focused button, nor a scroll.
      event.preventDefault();
      if (!event.repeat) this.hold('key', true);
      return;
    }
    const target = event.target;
    const typing = target instanceof HTMLElement && target.closest('input, textarea, select, [contenteditable], dialog');
    if (event.repeat || typing) return;
    if (event.key === 'm' || event.key === 'M') {
      event.preventDefault();
      this.toggleMute();
    }
  }

  /** @param {KeyboardEvent} event */
  onKeyUp(event) {
    if (!isSpace(event) || !this.held.has('key')) return;
    // Wherever the focus went meanwhile, letting go of Space ends talking.
    if (!keepsSpace(event.target)) event.preventDefault();
    this.hold('key', false);
  }
}
