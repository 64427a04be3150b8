// @ts-check
// What the room page says and does about end-to-end encryption: the secret read from the link's fragment
// (which the browser never sends anywhere), the room's keys made from it before joining, the badge and
// safety code in the room's header, the join view's notice, and the refusal when the link's key is damaged
// or the browser cannot encrypt. The secret lives in this object's memory only: never stored, never logged.
import { byId } from './dom.js';
import { setText } from './i18n.js';
import { RoomCrypto, encodedTransformSupported, readSecret } from './e2ee.js';
import { show } from './ui.js';

/** @typedef {import('./diagnostics.js').Diagnostics} Diagnostics */
/** @typedef {import('./e2ee.js').CryptoStats} CryptoStats */
/** @typedef {'plain' | 'encrypted' | 'damaged' | 'unsupported'} Mode */

/** @type {Record<Mode, { key: string }>} the join view's notice for each mode */
const NOTICE = {
  plain: { key: 'e2ee_join_off' },
  encrypted: { key: 'e2ee_join_on' },
  damaged: { key: 'e2ee_damaged' },
  unsupported: { key: 'e2ee_unsupported' },
};

/**
 * @param {number} micros summed over `frames`
 * @param {number} frames
 */
function perFrame(micros, frames) {
  return frames ? (micros / frames).toFixed(0) : '–';
}

export class RoomPrivacy {
  /**
   * @param {string} room
   * @param {Diagnostics} diagnostics where the transform's counts go
   */
  constructor(room, diagnostics) {
    this.room = room;
    this.diagnostics = diagnostics;
    const reading = readSecret(window.location.hash);
    /** @type {string | null} */
    this.secret = reading.kind === 'secret' ? reading.secret : null;
    /** @type {Mode} */
    this.mode = reading.kind === 'damaged' ? 'damaged' : reading.kind === 'none' ? 'plain' : 'encrypted';
    if (this.mode === 'encrypted' && !encodedTransformSupported()) this.mode = 'unsupported';
    // Made as the page loads, so that joining need not wait. WebCrypto needs a secure context, as the microphone
    // does: without one, joining stops at the microphone's explanation before it asks for the keys.
    /** @type {Promise<RoomCrypto> | null} */
    this.keys = this.mode === 'encrypted' && this.secret && window.isSecureContext
      ? RoomCrypto.create(room, this.secret) : null;
    this.listening = false;
    // Changing only the fragment does not load the page again; the keys must follow the link, so it does.
    window.addEventListener('hashchange', () => window.location.reload());
    this.render();
  }

  // A link that cannot be joined from here is refused before anyone asks for the microphone.
  get canJoin() {
    return this.mode === 'plain' || this.mode === 'encrypted';
  }

  // The whole link, key included: the key is what lets the invited person hear the room.
  inviteLink() {
    const base = `${window.location.origin}/r/${this.room}`;
    return this.secret ? `${base}#${this.secret}` : base;
  }

  /**
   * The room's keys for the session, or null in a plain room.
   * @returns {Promise<RoomCrypto | null>}
   */
  async crypto() {
    if (this.mode === 'plain') return null;
    if (!this.keys) throw new Error(`no keys for a ${this.mode} link`);
    const crypto = await this.keys;
    if (!this.listening) {
      this.listening = true;
      crypto.on('stats', (stats) => this.showStats(stats));
    }
    return crypto;
  }

  render() {
    const notice = byId('e2ee-mode');
    notice.dataset.mode = this.mode;
    setText(notice, NOTICE[this.mode].key);
    // Damaged and unsupported are reasons the person cannot join: read out at once.
    notice.setAttribute('role', this.canJoin ? 'note' : 'alert');
    show(notice, true);
    if (!this.canJoin) byId('btn-join', HTMLButtonElement).disabled = true;
    const badge = byId('e2ee-badge');
    badge.dataset.mode = this.mode;
    const encrypted = this.mode === 'encrypted';
    setText(byId('e2ee-state'), encrypted ? 'e2ee_on' : 'e2ee_off');
    show(badge, true);
    show(byId('safety'), false);
    this.diagnostics.update({ e2ee: encrypted ? null : { key: 'diag_e2ee_off' } });
    if (this.keys) {
      this.keys.then((crypto) => {
        byId('safety-code').textContent = crypto.safetyCode;
        show(byId('safety'), true);
      }).catch(() => {
        this.keys = null;
        this.mode = 'unsupported';
        this.render();
      });
    }
  }

  /** @param {CryptoStats} stats */
  showStats(stats) {
    const { encrypted, decrypted, failed, replayed, encryptMicros, decryptMicros } = stats;
    this.diagnostics.update({
      e2ee: {
        key: 'diag_e2ee_stats',
        vars: {
          encrypted, decrypted, failed, replayed,
          encryptUs: perFrame(encryptMicros, encrypted), decryptUs: perFrame(decryptMicros, decrypted),
        },
      },
    });
    // The same counts, exact, for whoever reads the panel's markup (the browser tests and the benchmark).
    const row = this.diagnostics.panel.querySelector('[data-diag=e2ee]');
    if (row instanceof HTMLElement) row.dataset.stats = JSON.stringify(stats);
  }
}
