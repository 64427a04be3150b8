// @ts-check
// The room chat's log, and the rules the page applies before sending: the length counted as the server counts
// it, the rate the server allows (contract.js holds the numbers). Every line is set as text (textContent), never
// as markup: a message comes from a stranger.
import { el } from './dom.js';
import { language, setText } from './i18n.js';

/** Show how many characters are left once this few are (of contract.js MAX_CHAT_CHARS). */
export const CHAT_WARN_LEFT = 100;
/** The log keeps this many lines (messages, joins, leaves); older ones leave the page for good. */
export const CHAT_KEEP = 100;

/**
 * The length the server checks: code points, so an emoji of one code point is one character.
 * @param {string} text
 * @returns {number}
 */
export function codePoints(text) {
  const pairs = text.match(/[\uD800-\uDBFF][\uDC00-\uDFFF]/g);
  return text.length - (pairs ? pairs.length : 0);
}

const CONTROL = /\p{Cc}/u;
const CONTROLS = /\p{Cc}/gu;

/**
 * What a typed message becomes on the wire: control characters (a pasted tab), which the server refuses, made
 * spaces, and the white space at either end gone. '' is nothing worth sending.
 * @param {string} typed
 * @returns {string}
 */
export function cleanChat(typed) {
  return typed.replace(CONTROLS, ' ').trim();
}

/**
 * Whether a received message is one the server would have passed on as text: some visible text, no control
 * characters, not too long. Only its sender could have sealed another.
 * @param {string} text
 * @param {number} maxChars
 * @returns {boolean}
 */
export function isFitMessage(text, maxChars) {
  return text.trim() !== '' && !CONTROL.test(text) && codePoints(text) <= maxChars;
}

/** A token bucket with the server's numbers, so that the page refuses what the server would. */
export class RateLimit {
  /**
   * @param {number} burst
   * @param {number} perSecond
   * @param {() => number} [now] milliseconds
   */
  constructor(burst, perSecond, now = () => performance.now()) {
    this.burst = burst;
    this.perMs = perSecond / 1000;
    this.now = now;
    this.tokens = burst;
    this.at = now();
  }

  refill() {
    const now = this.now();
    this.tokens = Math.min(this.burst, this.tokens + (now - this.at) * this.perMs);
    this.at = now;
  }

  /** @returns {boolean} whether a message may go now (and it is counted) */
  take() {
    this.refill();
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  // A message counted but never sent (the socket was down) does not use up the person's rate.
  giveBack() {
    this.tokens = Math.min(this.burst, this.tokens + 1);
  }
}

/**
 * @param {Date} when
 * @returns {string} hours and minutes, as the page's language writes them
 */
function clock(when) {
  return when.toLocaleTimeString(language() === 'zh' ? 'zh-CN' : 'en', { hour: '2-digit', minute: '2-digit' });
}

/** The messages list and the unread badge of the chat button. */
export class ChatLog {
  /**
   * @param {HTMLElement} log the role="log" element
   * @param {HTMLElement} badge shown on the chat button while messages wait unread
   * @param {HTMLElement} badgeCount the number in it
   * @param {HTMLElement} badgeText the same for screen readers, as words
   */
  constructor(log, badge, badgeCount, badgeText) {
    this.log = log;
    this.badge = badge;
    this.badgeCount = badgeCount;
    this.badgeText = badgeText;
    this.unread = 0;
  }

  /**
   * One message, as text.
   * @param {string} name the sender's nickname
   * @param {string} text
   * @param {boolean} own typed here
   */
  message(name, text, own) {
    const when = new Date();
    const entry = el('div', null, own ? 'chat-msg is-self' : 'chat-msg');
    const meta = el('div', null, 'chat-meta');
    const time = el('time', clock(when), 'chat-time');
    time.dateTime = when.toISOString();
    meta.append(el('span', name, 'chat-name'), ' ', time);
    entry.append(meta, el('div', text, 'chat-text'));
    this.add(entry);
  }

  /**
   * A line the page writes itself ("Ana joined"), translated again when the language changes.
   * @param {'chat_joined' | 'chat_left'} key
   * @param {string} name
   */
  notice(key, name) {
    const entry = el('div', null, 'chat-line');
    if (key === 'chat_joined') setText(entry, 'chat_joined', { name });
    else setText(entry, 'chat_left', { name });
    this.add(entry);
  }

  /** @param {HTMLElement} entry */
  add(entry) {
    // Follow the conversation only if the reader was already at its end (not while they scroll back).
    const atEnd = this.log.scrollHeight - this.log.scrollTop - this.log.clientHeight < 24;
    this.log.append(entry);
    while (this.log.childElementCount > CHAT_KEEP) this.log.firstElementChild?.remove();
    if (atEnd) this.log.scrollTop = this.log.scrollHeight;
  }

  /** @param {number} count messages that arrived while the panel was closed; 0 hides the badge */
  setUnread(count) {
    this.unread = count;
    this.badge.classList.toggle('hidden', count === 0);
    this.badgeCount.textContent = count > 99 ? '99+' : String(count);
    if (count) setText(this.badgeText, 'chat_unread', { count });
    else this.badgeText.textContent = '';
  }
}
