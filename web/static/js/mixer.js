// The mixer panel: mic gain and level, devices, voice processing toggles, and a volume per person.
// Settings are remembered in localStorage; per-person volumes by nickname, since peer ids change
// on every visit.
import { AudioEngine } from './audio.js';
import { t } from './i18n.js';
import { loadPref, savePref } from './prefs.js';
import { show } from './ui.js';
import { meterFraction } from './vad.js';

const DEFAULTS = {
  micGain: 100,
  echoCancellation: true,
  noiseSuppression: true,
  autoGainControl: true,
  inputId: '',
  outputId: '',
};
const TOGGLES = { 'opt-ec': 'echoCancellation', 'opt-ns': 'noiseSuppression', 'opt-agc': 'autoGainControl' };

export function micOptions(s = { ...DEFAULTS, ...loadPref('audio', {}) }) {
  return {
    deviceId: s.inputId,
    echoCancellation: s.echoCancellation,
    noiseSuppression: s.noiseSuppression,
    autoGainControl: s.autoGainControl,
  };
}

export class Mixer extends EventTarget {
  constructor(doc, engine) {
    super();
    this.doc = doc;
    this.engine = engine;
    this.settings = { ...DEFAULTS, ...loadPref('audio', {}) };
    this.volumes = loadPref('volumes', {});
    this.rows = new Map();
    this.el = (id) => doc.getElementById(id);
    this.meterShown = -1;

    const gain = this.el('mic-gain');
    gain.value = String(this.settings.micGain);
    this.showGain();
    engine.setMicGain(this.settings.micGain / 100);
    gain.addEventListener('input', () => {
      this.settings.micGain = Number(gain.value);
      engine.setMicGain(this.settings.micGain / 100);
      this.showGain();
      this.save();
    });
    for (const [id, key] of Object.entries(TOGGLES)) {
      const box = this.el(id);
      box.checked = Boolean(this.settings[key]);
      box.addEventListener('change', () => {
        this.settings[key] = box.checked;
        this.save();
        this.reopenMic();
      });
    }
    this.el('input-device').addEventListener('change', (event) => {
      this.settings.inputId = event.target.value;
      this.save();
      this.reopenMic();
    });
    this.el('output-device').addEventListener('change', (event) => this.chooseOutput(event.target.value));
    this.onDeviceChange = () => this.refreshDevices();
    navigator.mediaDevices.addEventListener('devicechange', this.onDeviceChange);
    this.refreshDevices();
    if (this.settings.outputId) this.chooseOutput(this.settings.outputId);
  }

  save() {
    savePref('audio', this.settings);
  }

  showGain() {
    this.el('mic-gain-out').textContent = `${this.settings.micGain}%`;
  }

  async reopenMic() {
    try {
      await this.engine.openMic(micOptions(this.settings));
      this.refreshDevices();
    } catch (error) {
      this.fail('err_mic_switch', error);
    }
  }

  async chooseOutput(deviceId) {
    try {
      await this.engine.setOutput(deviceId);
      this.settings.outputId = deviceId;
      this.save();
    } catch (error) {
      this.fail('err_output_device', error);
    }
  }

  fail(key, error) {
    this.dispatchEvent(new CustomEvent('error', { detail: { key, error } }));
  }

  async refreshDevices() {
    const devices = await navigator.mediaDevices.enumerateDevices();
    const inputs = devices.filter((d) => d.kind === 'audioinput');
    this.fillSelect(this.el('input-device'), inputs, this.engine.micDeviceId);
    const outputs = devices.filter((d) => d.kind === 'audiooutput');
    const canChoose = AudioEngine.canChooseOutput && outputs.length > 0;
    show(this.el('output-device-field'), canChoose);
    if (canChoose) this.fillSelect(this.el('output-device'), outputs, this.settings.outputId || 'default');
  }

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
      row.querySelector('.volume-name').textContent = peer.name;
    }
    show(this.el('volume-empty'), this.rows.size === 0);
  }

  createRow(peer) {
    const row = this.el('tpl-volume').content.firstElementChild.cloneNode(true);
    row.dataset.peerId = peer.id;
    const input = row.querySelector('input');
    const output = row.querySelector('output');
    const percent = Object.hasOwn(this.volumes, peer.name) ? this.volumes[peer.name] : 100;
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
    this.el('volume-list').append(row);
    return row;
  }

  updateMeter(db) {
    const fraction = meterFraction(db);
    this.el('mic-meter-fill').style.transform = `scaleX(${fraction.toFixed(3)})`;
    const percent = Math.round(fraction * 100);
    if (Math.abs(percent - this.meterShown) >= 5) {
      this.meterShown = percent;
      this.el('mic-meter').setAttribute('aria-valuenow', String(percent));
    }
  }

  close() {
    navigator.mediaDevices.removeEventListener('devicechange', this.onDeviceChange);
    for (const row of this.rows.values()) row.remove();
    this.rows.clear();
  }
}
