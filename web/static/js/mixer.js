// @ts-check
// The mixer panel: mic gain and level, the speaking threshold, devices, voice processing toggles, and a
// volume per person. Settings are remembered in localStorage; per-person volumes by nickname, since peer ids
// change on every visit. (Its push-to-talk checkbox is talk.js's.)
import { AudioEngine } from './audio.js';
import { byId, find } from './dom.js';
import { Emitter } from './events.js';
import { t } from './i18n.js';
import { loadPref, savePref } from './prefs.js';
import { show } from './ui.js';
import { DEFAULT_ON_DB, VoiceActivity, clampThreshold, meterFraction } from './vad.js';

/** @typedef {import('./session.js').Peer} Peer */
/**
 * What the panel remembers.
 * @typedef {object} AudioSettings
 * @property {number} micGain percent
 * @property {boolean} echoCancellation
 * @property {boolean} noiseSuppression
 * @property {boolean} autoGainControl
 * @property {string} inputId '' for the default microphone
 * @property {string} outputId '' for the default output
 * @property {number} vadThreshold dBFS above which the own microphone counts as speaking
 */
/** @typedef {'echoCancellation' | 'noiseSuppression' | 'autoGainControl'} Toggle */

/** @type {AudioSettings} */
const DEFAULTS = {
  micGain: 100,
  echoCancellation: true,
  noiseSuppression: true,
  autoGainControl: true,
  inputId: '',
  outputId: '',
  vadThreshold: DEFAULT_ON_DB,
};
/** @type {[string, Toggle][]} checkbox id, setting */
const TOGGLES = [['opt-ec', 'echoCancellation'], ['opt-ns', 'noiseSuppression'], ['opt-agc', 'autoGainControl']];

/**
 * @param {AudioSettings} [s]
 * @returns {import('./audio.js').MicSettings}
 */
export function micOptions(s = { ...DEFAULTS, ...loadPref('audio', {}) }) {
  return {
    deviceId: s.inputId,
    echoCancellation: s.echoCancellation,
    noiseSuppression: s.noiseSuppression,
    autoGainControl: s.autoGainControl,
  };
}

/**
 * @extends {Emitter<{ error: { key: string, error: unknown } }>}
 */
export class Mixer extends Emitter {
  /** @param {AudioEngine} engine */
  constructor(engine) {
    super();
    this.engine = engine;
    /** @type {AudioSettings} */
    this.settings = { ...DEFAULTS, ...loadPref('audio', {}) };
    /** @type {Record<string, number>} nickname -> volume percent */
    this.volumes = loadPref('volumes', {});
    /** @type {Map<string, HTMLElement>} */
    this.rows = new Map();
    this.meterShown = -1;
    this.settings.vadThreshold = clampThreshold(this.settings.vadThreshold);
    // The own microphone's voice activity (the tile's glow, the meter's colour), by the chosen threshold.
    this.voice = new VoiceActivity(engine.micAnalyser, this.settings.vadThreshold);
    const threshold = byId('vad-threshold', HTMLInputElement);
    threshold.value = String(this.settings.vadThreshold);
    this.showThreshold();
    threshold.addEventListener('input', () => {
      this.settings.vadThreshold = clampThreshold(Number(threshold.value));
      this.voice.onDb = this.settings.vadThreshold;
      this.showThreshold();
      this.save();
    });

    const gain = byId('mic-gain', HTMLInputElement);
    gain.value = String(this.settings.micGain);
    this.showGain();
    engine.setMicGain(this.settings.micGain / 100);
    gain.addEventListener('input', () => {
      this.settings.micGain = Number(gain.value);
      engine.setMicGain(this.settings.micGain / 100);
      this.showGain();
      this.save();
    });
    for (const [id, key] of TOGGLES) {
      const box = byId(id, HTMLInputElement);
      box.checked = Boolean(this.settings[key]);
      box.addEventListener('change', () => {
        this.settings[key] = box.checked;
        this.save();
        void this.reopenMic();
      });
    }
    const input = byId('input-device', HTMLSelectElement);
    input.addEventListener('change', () => {
      this.settings.inputId = input.value;
      this.save();
      void this.reopenMic();
    });
    const output = byId('output-device', HTMLSelectElement);
    output.addEventListener('change', () => void this.chooseOutput(output.value));
    this.onDeviceChange = () => void this.refreshDevices();
    navigator.mediaDevices.addEventListener('devicechange', this.onDeviceChange);
    void this.refreshDevices();
    if (this.settings.outputId) void this.chooseOutput(this.settings.outputId);
  }

  save() {
    savePref('audio', this.settings);
  }

  showGain() {
    byId('mic-gain-out').textContent = `${this.settings.micGain}%`;
  }

  // The threshold as a number beside its slider and as a mark on the meter, where the level can be seen
  // crossing it.
  showThreshold() {
    const db = this.settings.vadThreshold;
    byId('vad-threshold-out').textContent = `${db} dB`;
    byId('vad-threshold').setAttribute('aria-valuetext', `${db} dB`);
    byId('mic-threshold').style.left = `${(meterFraction(db) * 100).toFixed(1)}%`;
  }

  // Never rejects: a failure becomes an 'error' event.
  async reopenMic() {
    try {
      await this.engine.openMic(micOptions(this.settings));
      await this.refreshDevices();
    } catch (error) {
      this.fail('err_mic_switch', error);
    }
  }

  // Never rejects: a failure becomes an 'error' event.
  /** @param {string} deviceId */
  async chooseOutput(deviceId) {
    try {
      await this.engine.setOutput(deviceId);
      this.settings.outputId = deviceId;
      this.save();
    } catch (error) {
      this.fail('err_output_device', error);
    }
  }

  /**
   * @param {string} key the message to show
   * @param {unknown} error
   */
  fail(key, error) {
    this.emit('error', { key, error });
  }

  // Never rejects: a device list the browser will not give leaves the lists as they are.
  async refreshDevices() {
    let devices;
    try {
      devices = await navigator.mediaDevices.enumerateDevices();
    } catch {
      return;
    }
    const inputs = devices.filter((d) => d.kind === 'audioinput');
    this.fillSelect(byId('input-device', HTMLSelectElement), inputs, this.engine.micDeviceId);
    const outputs = devices.filter((d) => d.kind === 'audiooutput');
    const canChoose = AudioEngine.canChooseOutput && outputs.length > 0;
    show(byId('output-device-field'), canChoose);
    if (canChoose) {
      this.fillSelect(byId('output-device', HTMLSelectElement), outputs, this.settings.outputId || 'default');
    }
  }

  /**
   * @param {HTMLSelectElement} select
   * @param {MediaDeviceInfo[]} devices
   * @param {string} selected device id
   */
  fillSelect(select, devices, selected) {
    select.replaceChildren(...devices.map((device, index) => {
      const option = document.createElement('option');
      option.value = device.deviceId;
      option.textContent = device.label || t('device_n', { n: index + 1 });
      option.selected = device.deviceId === selected;
      return option;
    }));
    select.disabled = devices.length < 2;
  }

  // Keeps one volume row per other person and applies their remembered volume.
  /**
   * @param {Map<string, Peer>} peers
   * @param {string | null} selfId
   */
  syncPeople(peers, selfId) {
    for (const [id, row] of this.rows) {
      if (!peers.has(id)) {
        row.remove();
        this.rows.delete(id);
      }
    }
    for (const peer of peers.values()) {
      if (peer.id === selfId) continue;
      let row = this.rows.get(peer.id);
      if (!row) {
        row = this.createRow(peer);
        this.rows.set(peer.id, row);
      }
      find(row, '.volume-name').textContent = peer.name;
    }
    show(byId('volume-empty'), this.rows.size === 0);
  }

  /**
   * @param {Peer} peer
   * @returns {HTMLElement}
   */
  createRow(peer) {
    const template = byId('tpl-volume', HTMLTemplateElement);
    const row = /** @type {HTMLElement} */ (find(template.content, '*').cloneNode(true));
    row.dataset.peerId = peer.id;
    const input = find(row, 'input', HTMLInputElement);
    const output = find(row, 'output', HTMLOutputElement);
    const percent = Object.hasOwn(this.volumes, peer.name) ? this.volumes[peer.name] : 100;
    /** @param {number} value percent */
    const apply = (value) => {
      input.value = String(value);
      output.textContent = `${value}%`;
      input.setAttribute('aria-valuetext', `${value}%`);
      this.engine.setVolume(peer.id, value / 100);
    };
    apply(percent);
    input.addEventListener('input', () => {
      const value = Number(input.value);
      apply(value);
      this.volumes[peer.name] = value;
      savePref('volumes', this.volumes);
    });
    byId('volume-list').append(row);
    return row;
  }

  /** @param {number} db */
  updateMeter(db) {
    const fraction = meterFraction(db);
    byId('mic-meter-fill').style.transform = `scaleX(${fraction.toFixed(3)})`;
    byId('mic-meter').classList.toggle('is-voice', this.voice.speaking);
    const percent = Math.round(fraction * 100);
    if (Math.abs(percent - this.meterShown) >= 5) {
      this.meterShown = percent;
      byId('mic-meter').setAttribute('aria-valuenow', String(percent));
    }
  }

  close() {
    navigator.mediaDevices.removeEventListener('devicechange', this.onDeviceChange);
    for (const row of this.rows.values()) row.remove();
    this.rows.clear();
  }
}
