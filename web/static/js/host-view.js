// @ts-check
// The room's host as the page shows it: the crown (PeopleView draws it), the lock, the host's menu for each
// other person, the lobby a locked room's newcomers wait in (for the host) and the wait itself (for the
// newcomer), the host's request to mute, and what a person can do after the server sent them away.
// Everything the host asks goes through session.hosting; the server checks it and says what happened.
import { byId, el, find } from './dom.js';
import { setText, t } from './i18n.js';
import { newSecret } from './e2ee.js';
import { newRoomId } from './landing.js';
import { playCue } from './sounds.js';
import { show } from './ui.js';

/** @typedef {import('./session.js').RoomSession} RoomSession */
/** @typedef {import('./audio.js').AudioEngine} AudioEngine */
/** @typedef {import('./ui.js').PeopleView} PeopleView */
/** @typedef {import('./ui.js').StatusBanner} StatusBanner */
/** @typedef {'remove' | 'hand_over'} Confirmed a host action asked about first */

// After which of the server's farewells coming back can work (the room may have room again, or be unlocked).
const REJOIN_AFTER = ['err_removed', 'err_lobby_timeout', 'err_lobby_closed', 'err_room_full', 'err_server_full'];
// After which a room of one's own is the way on (a full server has no room for one either).
const NEW_ROOM_AFTER = ['err_removed', 'err_declined', 'err_lobby_timeout', 'err_lobby_closed', 'err_room_full'];
/** @type {Record<Confirmed, { key: string, button: string }>} the question, and its button's label */
const CONFIRM = {
  remove: { key: 'host_confirm_remove', button: 'host_remove' },
  hand_over: { key: 'host_confirm_hand_over', button: 'host_make_host' },
};

export class HostView {
  /**
   * @param {object} options
   * @param {PeopleView} options.people
   * @param {StatusBanner} options.banner
   * @param {() => void} options.mute mutes this page's microphone (as its Mute button does)
   * @param {() => void} options.leave leaves the room (as its Leave button does)
   */
  constructor({ people, banner, mute, leave }) {
    this.people = people;
    this.banner = banner;
    /** @type {RoomSession | null} */
    this.session = null;
    /** @type {AudioEngine | null} */
    this.engine = null;
    /** @type {Set<string>} who waited in the lobby at the last update, to cue only on newcomers */
    this.knocking = new Set();
    /** @type {{ peerId: string, button: HTMLElement } | null} whose menu is open */
    this.menuFor = null;
    /** @type {{ type: Confirmed, peerId: string, button: HTMLElement } | null} what the dialog asks about */
    this.pending = null;
    this.menu = byId('host-menu');
    this.dialog = byId('host-confirm', HTMLDialogElement);
    people.onMenu = (peerId, button) => this.openMenu(peerId, button);
    byId('btn-lock').addEventListener('click', () => {
      if (this.session) this.session.hosting.setLocked(!this.session.hosting.locked);
    });
    byId('btn-lobby-leave').addEventListener('click', () => leave());
    byId('btn-mute-ask').addEventListener('click', () => {
      mute();
      this.askedToMute(false);
    });
    byId('btn-mute-dismiss').addEventListener('click', () => this.askedToMute(false));
    byId('join-form').addEventListener('submit', () => this.showFatal(''));
    byId('btn-rejoin').addEventListener('click', () => window.location.reload());
    byId('btn-new-room').addEventListener('click', () => {
      // Of the same kind as this one: a room with a key in its link is end-to-end encrypted.
      const encrypted = window.location.hash.length > 1;
      window.location.assign(`/r/${newRoomId()}${encrypted ? `#${newSecret()}` : ''}`);
    });
    for (const item of this.menu.querySelectorAll('[data-act]')) {
      item.addEventListener('click', () => this.onMenuItem(/** @type {HTMLElement} */ (item).dataset.act ?? ''));
    }
    this.menu.addEventListener('keydown', (event) => this.onMenuKey(event));
    document.addEventListener('pointerdown', (event) => {
      const target = event.target;
      if (this.menuFor && target instanceof Node && !this.menu.contains(target) && !this.menuFor.button.contains(target)) {
        this.closeMenu(false);
      }
    });
    this.dialog.addEventListener('close', () => this.onConfirmed(this.dialog.returnValue === 'ok'));
  }

  /**
   * A new visit: follow its host, lobby and requests.
   * @param {RoomSession} session
   * @param {AudioEngine} engine for the lobby's cue
   */
  attach(session, engine) {
    this.session = session;
    this.engine = engine;
    this.knocking = new Set();
    const hosting = session.hosting;
    /** @param {() => void} handler */
    const mine = (handler) => () => {
      if (session === this.session) handler();
    };
    let wasHost = false; // in this visit, reconnects included (taking the role back after one is no news)
    hosting.on('changed', mine(() => {
      // Told only when the role comes from someone else (not as the first one in): the lobby may wait.
      if (hosting.isHost && !wasHost && session.peers.size > 1) this.banner.show('host_you_are_host', null, 'ok');
      wasHost ||= hosting.isHost;
      this.render();
    }));
    hosting.on('waiting', mine(() => this.showWaiting(true)));
    hosting.on('muterequest', mine(() => {
      if (!session.muted) this.askedToMute(true);
    }));
    session.on('reconnecting', mine(() => this.people.setReconnecting(true)));
    session.on('joined', mine(() => {
      this.showWaiting(false);
      this.people.setReconnecting(false);
    }));
    this.render();
  }

  // The visit ended (left, or sent away): nothing of the host's stays on screen.
  detach() {
    this.session = null;
    this.engine = null;
    this.closeMenu(false);
    this.pending = null;
    if (this.dialog.open) this.dialog.close('cancel');
    this.showWaiting(false);
    this.askedToMute(false);
    this.people.setHost(null, false);
    this.people.setReconnecting(false);
    for (const id of ['btn-lock', 'lock-badge', 'lobby']) show(byId(id), false);
  }

  /**
   * What a person sent away for good can do next, under the message that says why.
   * @param {string} key the message ('': none, the actions go)
   */
  showFatal(key) {
    const rejoin = REJOIN_AFTER.includes(key);
    const fresh = NEW_ROOM_AFTER.includes(key);
    show(byId('btn-rejoin'), rejoin);
    show(byId('btn-new-room'), fresh);
    show(byId('fatal-actions'), rejoin || fresh);
    // One way back in, not two side by side: "Join again" starts the page afresh.
    show(byId('btn-join'), !rejoin);
  }

  render() {
    const session = this.session;
    if (!session) return;
    const { isHost, host, locked } = session.hosting;
    this.people.setHost(host, isHost);
    show(byId('lock-badge'), locked);
    const lockButton = byId('btn-lock');
    show(lockButton, isHost);
    setText(byId('btn-lock-label'), locked ? 'host_unlock' : 'host_lock');
    if (this.menuFor && (!isHost || !session.peers.has(this.menuFor.peerId))) this.closeMenu(false);
    this.renderLobby(isHost ? session.hosting.lobby : []);
  }

  /** @param {{ id: string, name: string }[]} waiting */
  renderLobby(waiting) {
    const list = byId('lobby-list');
    list.replaceChildren(...waiting.map(({ id, name }) => this.lobbyEntry(id, name)));
    byId('lobby-count').textContent = String(waiting.length);
    show(byId('lobby'), waiting.length > 0);
    const newcomers = waiting.filter(({ id }) => !this.knocking.has(id));
    this.knocking = new Set(waiting.map(({ id }) => id));
    if (newcomers.length) {
      // Heard and seen even when the lobby is scrolled out of view (a phone shows the grid first).
      this.banner.show('lobby_knock', { name: newcomers[newcomers.length - 1].name }, 'info');
      const engine = this.engine;
      if (engine) playCue(engine.ctx, engine.cueDest, 'join');
    } else if (!waiting.length) this.banner.hideIf('lobby_knock');
  }

  /**
   * @param {string} id
   * @param {string} name
   * @returns {HTMLLIElement}
   */
  lobbyEntry(id, name) {
    const entry = el('li', null, 'lobby-entry');
    entry.dataset.peerId = id;
    const admit = this.lobbyButton(id, 'admit', name);
    const decline = this.lobbyButton(id, 'decline', name);
    admit.classList.add('btn-primary');
    setText(admit, 'lobby_admit');
    setText(decline, 'lobby_decline');
    // Named after the person ("Admit Ann"): a list of them reads as a list of different buttons.
    admit.setAttribute('aria-label', t('lobby_admit_label', { name }));
    decline.setAttribute('aria-label', t('lobby_decline_label', { name }));
    entry.append(el('span', name, 'lobby-name'), admit, decline);
    return entry;
  }

  /**
   * @param {string} id the waiting person
   * @param {'admit' | 'decline'} act
   * @param {string} name
   * @returns {HTMLButtonElement}
   */
  lobbyButton(id, act, name) {
    const button = el('button', null, 'btn');
    button.type = 'button';
    button.dataset.act = act;
    // A later language switch renames it too.
    button.dataset.i18nAttr = `aria-label:lobby_${act}_label`;
    button.dataset.i18nVars = JSON.stringify({ name });
    button.addEventListener('click', () => this.session?.hosting.act(act, id));
    return button;
  }

  /** @param {boolean} waiting */
  showWaiting(waiting) {
    const card = byId('lobby-wait');
    if (waiting) this.banner.hideIf('connecting', 'reconnecting'); // the socket is up: it waits, in its place
    if (waiting && card.classList.contains('hidden')) setText(byId('lobby-wait-text'), 'lobby_waiting');
    show(card, waiting);
    byId('room-view').classList.toggle('is-waiting', waiting);
  }

  /** @param {boolean} asked */
  askedToMute(asked) {
    if (asked) setText(byId('mute-ask-text'), 'host_mute_request');
    show(byId('mute-ask'), asked);
  }

  /**
   * @param {string} peerId
   * @param {HTMLElement} button the person's menu button
   */
  openMenu(peerId, button) {
    const session = this.session;
    const peer = session?.peers.get(peerId);
    if (!session || !peer || !session.hosting.isHost) return;
    const again = this.menuFor?.button === button;
    this.closeMenu(false);
    if (again) return; // a second press closes it
    this.menuFor = { peerId, button };
    this.menu.setAttribute('aria-label', t('host_menu_label', { name: peer.name }));
    show(find(this.menu, '[data-act=ask_mute]'), !peer.muted);
    show(this.menu, true);
    button.setAttribute('aria-expanded', 'true');
    const box = button.getBoundingClientRect();
    const width = this.menu.offsetWidth;
    const height = this.menu.offsetHeight;
    const left = Math.max(8, Math.min(box.right - width, window.innerWidth - width - 8));
    const below = box.bottom + 4 + height <= window.innerHeight;
    this.menu.style.left = `${left}px`;
    this.menu.style.top = `${below ? box.bottom + 4 : Math.max(8, box.top - 4 - height)}px`;
    this.menuItems()[0]?.focus();
  }

  /** @param {boolean} refocus give the focus back to the menu's button */
  closeMenu(refocus) {
    const open = this.menuFor;
    if (!open) return;
    this.menuFor = null;
    show(this.menu, false);
    open.button.setAttribute('aria-expanded', 'false');
    if (refocus) open.button.focus();
  }

  /** @returns {HTMLElement[]} the items shown, in order */
  menuItems() {
    return /** @type {HTMLElement[]} */ ([...this.menu.querySelectorAll('[data-act]:not(.hidden)')]);
  }

  /** @param {KeyboardEvent} event */
  onMenuKey(event) {
    const items = this.menuItems();
    const at = items.indexOf(/** @type {HTMLElement} */ (document.activeElement));
    /** @type {Record<string, number>} */
    const moves = { ArrowDown: at + 1, ArrowUp: at - 1, Home: 0, End: items.length - 1 };
    if (event.key in moves) {
      event.preventDefault();
      items[(moves[event.key] + items.length) % items.length]?.focus();
    } else if (event.key === 'Escape') {
      event.preventDefault();
      event.stopPropagation(); // the menu closes, not the room's panels
      this.closeMenu(true);
    } else if (event.key === 'Tab') {
      this.closeMenu(true);
    }
  }

  /** @param {string} act */
  onMenuItem(act) {
    const open = this.menuFor;
    const session = this.session;
    if (!open || !session) return;
    this.closeMenu(true);
    const peer = session.peers.get(open.peerId);
    if (!peer) return;
    if (act === 'ask_mute') {
      session.hosting.act('ask_mute', peer.id);
      this.banner.show('host_asked_mute', { name: peer.name }, 'ok');
    } else if (act === 'remove' || act === 'hand_over') {
      this.pending = { type: act, peerId: peer.id, button: open.button };
      setText(byId('host-confirm-text'), CONFIRM[act].key, { name: peer.name });
      setText(byId('host-confirm-ok'), CONFIRM[act].button);
      this.dialog.returnValue = '';
      this.dialog.showModal();
    }
  }

  /** @param {boolean} confirmed */
  onConfirmed(confirmed) {
    const pending = this.pending;
    this.pending = null;
    const session = this.session;
    if (!pending || !session) return;
    if (confirmed && session.peers.has(pending.peerId)) session.hosting.act(pending.type, pending.peerId);
    if (pending.button.isConnected && !pending.button.classList.contains('hidden')) pending.button.focus();
  }
}
