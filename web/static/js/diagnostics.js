// @ts-check
// The diagnostics panel: what a person can paste into a bug report when the room does not work.
import { byId } from './dom.js';
import { setText, t } from './i18n.js';

/** @typedef {{ key: string, vars?: import('./i18n.js').Vars }} Translatable */
/** @typedef {string | number | Translatable | null} Value */
/**
 * The panel's rows, by the data-diag name of their <dd>.
 * @typedef {object} Values
 * @property {string} browser
 * @property {string} transport
 * @property {string} websocket
 * @property {string} ice
 * @property {string} connection
 * @property {string | null} candidate
 * @property {string | null} rtt
 * @property {string | null} loss
 * @property {string | null} jitter
 * @property {string | null} lastError
 * @property {Translatable | null} audioPath
 * @property {Translatable | null} e2ee end-to-end encryption: off, or the voice transform's counts
 */
/** @typedef {{ brands?: { brand: string, version: string }[], platform?: string }} UserAgentData */

function describeBrowser() {
  // Chromium's User-Agent Client Hints; not in every browser, nor in TypeScript's DOM types yet.
  /** @type {UserAgentData | undefined} */
  const data = /** @type {{ userAgentData?: UserAgentData }} */ (navigator).userAgentData;
  const brands = data && data.brands;
  const named = brands ? brands.filter((b) => !/not.?a.?brand/i.test(b.brand)) : [];
  const platform = (data && data.platform) || navigator.platform || '';
  if (named.length) return `${named.map((b) => `${b.brand} ${b.version}`).join(', ')} (${platform})`;
  return navigator.userAgent;
}

export class Diagnostics {
  /** @param {HTMLElement} panel */
  constructor(panel) {
    this.panel = panel;
    /** @type {Values} */
    this.values = {
      browser: describeBrowser(),
      transport: window.location.protocol === 'https:' ? 'wss (TLS)' : 'ws',
      websocket: 'closed',
      ice: 'new',
      connection: 'new',
      candidate: null,
      rtt: null,
      loss: null,
      jitter: null,
      lastError: null,
      audioPath: null,
      e2ee: null,
    };
    this.render();
  }

  /** @param {Partial<Values>} values */
  update(values) {
    Object.assign(this.values, values);
    this.render();
  }

  // A value is plain text, or { key, vars } for a string that must follow a later language switch.
  render() {
    for (const dd of this.rows()) {
      /** @type {Value | undefined} */
      const value = this.values[/** @type {keyof Values} */ (dd.dataset.diag)];
      if (value && typeof value === 'object') {
        setText(dd, value.key, value.vars);
        continue;
      }
      delete dd.dataset.i18n;
      delete dd.dataset.i18nVars;
      dd.textContent = value === null || value === undefined || value === '' ? '–' : String(value);
    }
  }

  /** @returns {NodeListOf<HTMLElement>} */
  rows() {
    return this.panel.querySelectorAll('[data-diag]');
  }

  text() {
    const lines = [`GhostTalk ${byId('app-version').textContent}`
      + ` (${byId('app-commit').textContent})`, `URL: ${window.location.origin}`,
      `Time: ${new Date().toISOString()}`];
    for (const dd of this.rows()) {
      lines.push(`${dd.previousElementSibling?.textContent ?? ''}: ${dd.textContent}`);
    }
    lines.push(`User agent: ${navigator.userAgent}`);
    return lines.join('\n');
  }

  // Never rejects: the button says whether it worked.
  /** @param {HTMLElement} button */
  async copy(button) {
    try {
      await navigator.clipboard.writeText(this.text());
      setText(button, 'copied');
    } catch {
      setText(button, 'copy_failed');
    }
    window.setTimeout(() => setText(button, 'copy_diagnostics'), 2000);
  }

  // Formats the numbers of one stats sample for the panel.
  /**
   * @param {import('./stats.js').Sample} sample
   * @returns {Partial<Values>}
   */
  static fromSample(sample) {
    return {
      candidate: sample.candidateType,
      rtt: sample.rttMs === null ? null : t('unit_ms', { value: sample.rttMs }),
      loss: sample.lossPct === null ? null : `${sample.lossPct.toFixed(1)} %`,
      jitter: sample.jitterMs === null ? null : t('unit_ms', { value: sample.jitterMs }),
    };
  }
}
