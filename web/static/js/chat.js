// @ts-check
// The room chat: what is typed goes through the session (sealed with the room's chat key in an encrypted room),
// what the others send is shown as text, and the page writes the join and leave lines itself. The server
// keeps nothing, so the history lives in this page only: across reconnects and rejoins, until it unloads.
import { CHAT_WARN_LEFT, ChatLog, RateLimit, cleanChat, codePoints, isFitMessage } from './chat-view.js';
import { CHAT_BURST, CHAT_PER_SECOND, MAX_CHAT_CHARS } from './contract.js';
import { byId, find } from './dom.js';
import { setText, t } from './i18n.js';

/** @typedef {import('./session.js').RoomSession} RoomSession */
/** @typedef {import('./session.js').Peer} Peer */
/** @typedef {{ key: string, vars?: import('./i18n.js').Vars }} Notice */
/** @typedef {import('./e2ee.js').RoomCrypto} RoomCrypto */

// Long enough to read a short sentence; a notice also goes when the next message is sent.
const NOTICE_MS = 5000;
// The server's text when a person sends faster than it relays (ghosttalk/server, docs/E2EE.md "Chat").
const SERVER_TOO_FAST = /too many chat messages/i;

export class ChatPanel {
  constructor() {
    this.panel = byId('chat-panel');
    this.form = byId('chat-form', HTMLFormElement);
    this.input = byId('chat-input', HTMLInputElement);
    this.counter = byId('chat-count');
    this.notice = byId('chat-notice');
    this.logEl = byId('chat-log');
    this.log = new ChatLog(this.logEl, byId('chat-unread'), byId('chat-unread-count'), byId('chat-unread-text'));
    this.limit = new RateLimit(CHAT_BURST, CHAT_PER_SECOND);
    /** @type {RoomSession | null} the person's current visit; the last one after they left */
    this.session = null;
    /** @type {RoomCrypto | null} set in an end-to-end encrypted room */
    this.crypto = null;
    this.sending = false;
    this.dropped = 0;
    this.noticeTimer = 0;
    // Shown in the order they came, however long each one takes to open.
    /** @type {Promise<void>} */
    this.incoming = Promise.resolve();
    // The Send button: back to the field for the next message (Enter never leaves it).
    this.form.addEventListener('submit', (event) => {
      event.preventDefault();
      this.input.focus();
      void this.send();
    });
    this.input.addEventListener('keydown', (event) => this.onKey(event));
    this.input.addEventListener('input', () => this.showCount());
    // However the panel opens (its button, a shortcut), what was waiting is now read.
    new MutationObserver(() => this.onToggle()).observe(this.panel, { attributes: true, attributeFilter: ['class'] });
  }

  /**
   * Follows a new visit to the room (the history stays).
   * @param {RoomSession} session
   */
  attach(session) {
    this.session = session;
    this.crypto = session.crypto;
    session.on('chat', (message) => this.receive(session, message));
    session.on('peers', (change) => this.onPeers(session, change));
    session.on('problem', ({ message }) => {
      if (session === this.session && /\bchat\b/i.test(message)) this.onRefused(message);
    });
  }

  isOpen() {
    return !this.panel.classList.contains('hidden');
  }

  onToggle() {
    if (!this.isOpen()) return;
    this.log.setUnread(0);
    // Lines added while the panel was hidden had no height to scroll by.
    this.logEl.scrollTop = this.logEl.scrollHeight;
    // With a mouse, ready to type; on a touch screen the keyboard would cover the messages just opened.
    if (window.matchMedia('(pointer: fine)').matches) this.input.focus();
  }

  /** @param {KeyboardEvent} event */
  onKey(event) {
    // Enter that ends an IME composition (typing Chinese) picks the characters; it does not send.
    if (event.isComposing || event.keyCode === 229) return;
    if (event.key === 'Enter') {
      event.preventDefault();
      void this.send();
    } else if (event.key === 'Escape') {
      event.preventDefault();
      find(this.panel, '[data-close-panel]').click();
    }
  }

  // Never rejects: whatever stops a message is said in the notice, and the text stays in the field.
  async send() {
    const session = this.session;
    const typed = this.input.value;
    const text = cleanChat(typed);
    if (!session || this.sending || !text) return;
    // Counted as typed, as the counter under the field counts.
    if (codePoints(typed) > MAX_CHAT_CHARS) {
      this.say({ key: 'chat_too_long', vars: { max: MAX_CHAT_CHARS } });
      return;
    }
    const selfId = session.selfId;
    if (selfId === null) {
      this.say({ key: 'chat_not_sent' });
      return;
    }
    if (!this.limit.take()) {
      this.say({ key: 'chat_wait' });
      return;
    }
    this.sending = true;
    let sent = false;
    try {
      sent = await this.deliver(session, selfId, text);
    } finally {
      this.sending = false;
    }
    if (!sent) {
      this.limit.giveBack();
      this.say({ key: 'chat_not_sent' });
      return;
    }
    // What was typed while the message was being sealed stays for the next one.
    if (this.input.value === typed) this.input.value = '';
    this.showCount();
    this.hideNotice();
    const self = session.peers.get(selfId);
    this.log.message(self ? self.name : session.name, text, true);
  }

  /**
   * @param {RoomSession} session
   * @param {string} selfId
   * @param {string} text
   * @returns {Promise<boolean>} whether it left on an open socket
   */
  async deliver(session, selfId, text) {
    const crypto = this.crypto;
    if (!crypto) return session.sendChat({ text });
    let sealed;
    try {
      sealed = await crypto.sealChat(text, selfId);
    } catch {
      return false;
    }
    // Sealed for the sender it was then; a rejoin since (a new peer id) would make it unreadable.
    return session.selfId === selfId && session === this.session && session.sendChat({ sealed });
  }

  /**
   * @param {RoomSession} session
   * @param {{ from: string, text?: string, sealed?: string }} message
   */
  receive(session, { from, text, sealed }) {
    if (session !== this.session) return;
    const peer = session.peers.get(from);
    const name = peer ? peer.name : t('chat_someone');
    const crypto = this.crypto;
    if (!crypto) {
      // A sealed message in a plain room means nothing here: shown as text, it would be noise.
      if (typeof text === 'string') this.showMessage(name, text);
      else this.drop();
      return;
    }
    // Plain text in an encrypted room is never shown: a confused client must not look like a safe one.
    if (typeof sealed !== 'string') {
      this.drop();
      return;
    }
    this.incoming = this.incoming.then(async () => {
      const opened = await crypto.openChat(sealed, from).catch(() => null);
      if (opened === null) this.drop();
      else this.showMessage(name, opened);
    });
  }

  /**
   * @param {string} name
   * @param {string} text
   */
  showMessage(name, text) {
    // The server checks plain text; only the sender could seal something it would have refused.
    if (!isFitMessage(text, MAX_CHAT_CHARS)) {
      this.drop();
      return;
    }
    this.log.message(name, text, false);
    if (!this.isOpen()) this.log.setUnread(this.log.unread + 1);
  }

  // Counted where a curious person (or a test) can read it: the log's data-dropped.
  drop() {
    this.dropped += 1;
    this.logEl.dataset.dropped = String(this.dropped);
  }

  /**
   * @param {RoomSession} session
   * @param {{ joined?: Peer, left?: Peer }} change
   */
  onPeers(session, { joined, left }) {
    if (session !== this.session) return;
    if (joined && joined.id !== session.selfId) this.log.notice('chat_joined', joined.name);
    if (left) this.log.notice('chat_left', left.name);
  }

  /** @param {string} message the server's error text (English) */
  onRefused(message) {
    if (SERVER_TOO_FAST.test(message)) this.say({ key: 'chat_wait' });
    else this.say({ key: 'chat_refused', vars: { reason: message } });
  }

  showCount() {
    const left = MAX_CHAT_CHARS - codePoints(this.input.value);
    this.input.setAttribute('aria-invalid', String(left < 0));
    this.counter.classList.toggle('is-over', left < 0);
    if (left < 0) setText(this.counter, 'chat_too_many', { count: -left });
    else if (left <= CHAT_WARN_LEFT) setText(this.counter, 'chat_chars_left', { count: left });
    else {
      delete this.counter.dataset.i18n;
      this.counter.textContent = '';
    }
  }

  // The notice is a status region that stays in place: emptied rather than hidden, so that screen readers
  // announce each new text.
  /** @param {Notice} notice */
  say({ key, vars }) {
    setText(this.notice, key, vars);
    window.clearTimeout(this.noticeTimer);
    this.noticeTimer = window.setTimeout(() => this.hideNotice(), NOTICE_MS);
  }

  hideNotice() {
    window.clearTimeout(this.noticeTimer);
    delete this.notice.dataset.i18n;
    this.notice.textContent = '';
  }
}
