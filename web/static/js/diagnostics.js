// The diagnostics panel: what a person can paste into a bug report when the room does not work.
import { setText, t } from './i18n.js';

function describeBrowser() {
  const brands = navigator.userAgentData && navigator.userAgentData.brands;
  const named = brands ? brands.filter((b) => !/not.?a.?brand/i.test(b.brand)) : [];
  const platform = (navigator.userAgentData && navigator.userAgentData.platform) || navigator.platform || '';
  if (named.length) return `${named.map((b) => `${b.brand} ${b.version}`).join(', ')} (${platform})`;
  return navigator.userAgent;
}

export class Diagnostics {
  constructor(panel) {
    this.panel = panel;
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
    };
    this.render();
  }

  update(values) {
    Object.assign(this.values, values);
    this.render();
  }

  // A value is plain text, or { key, vars } for a string that must follow a later language switch.
  render() {
    for (const dd of this.panel.querySelectorAll('[data-diag]')) {
      const value = this.values[dd.dataset.diag];
      if (value && typeof value === 'object') {
        setText(dd, value.key, value.vars);
        continue;
      }
      delete dd.dataset.i18n;
      delete dd.dataset.i18nVars;
      dd.textContent = value === null || value === undefined || value === '' ? '–' : String(value);
    }
  }

  text() {
    const lines = [`GhostTalk ${document.getElementById('app-version').textContent}`
      + ` (${document.getElementById('app-commit').textContent})`, `URL: ${window.location.origin}`,
      `Time: ${new Date().toISOString()}`];
    for (const dd of this.panel.querySelectorAll('[data-diag]')) {
      lines.push(`${dd.previousElementSibling.textContent}: ${dd.textContent}`);
    }
    lines.push(`User agent: ${navigator.userAgent}`);
    return lines.join('\n');
  }

  // Formats the numbers of one stats sample for the panel.
  static fromSample(sample) {
    return {
      candidate: sample.candidateType,
      rtt: sample.rttMs === null ? null : t('unit_ms', { value: sample.rttMs }),
      loss: sample.lossPct === null ? null : `${sample.lossPct.toFixed(1)} %`,
      jitter: sample.jitterMs === null ? null : t('unit_ms', { value: sample.jitterMs }),
    };
  }
}
