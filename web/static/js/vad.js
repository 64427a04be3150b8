// @ts-check
// Voice activity from an AnalyserNode: RMS level with an onset threshold and a hang time, so that the
// speaking glow neither flickers between syllables nor lights up on background hiss.
export const DEFAULT_ON_DB = -48;
// The onset threshold a person may choose for their own microphone (the Mixer's slider), in dBFS: below
// -60 the meter shows nothing, and above -20 ordinary speech would hardly ever count.
export const MIN_ON_DB = -60;
export const MAX_ON_DB = -20;
// Once speaking, the level may fall this far below the onset before the hang time starts.
const HYSTERESIS_DB = 8;
const HANG_MS = 350;

/**
 * @param {AnalyserNode} analyser
 * @param {Float32Array<ArrayBuffer>} buffer scratch space, `analyser.fftSize` samples
 * @returns {number} dBFS, -Infinity for silence
 */
export function levelDb(analyser, buffer) {
  analyser.getFloatTimeDomainData(buffer);
  let sum = 0;
  for (const sample of buffer) sum += sample * sample;
  const rms = Math.sqrt(sum / buffer.length);
  return rms > 0 ? 20 * Math.log10(rms) : -Infinity;
}

/**
 * A threshold as stored or typed, made a whole number of dB within the allowed range (the default when it
 * is not a number at all).
 * @param {unknown} value
 * @returns {number}
 */
export function clampThreshold(value) {
  const db = typeof value === 'number' && Number.isFinite(value) ? Math.round(value) : DEFAULT_ON_DB;
  return Math.min(MAX_ON_DB, Math.max(MIN_ON_DB, db));
}

export class VoiceActivity {
  /**
   * @param {AnalyserNode} analyser
   * @param {number} [onDb] the onset threshold, dBFS
   */
  constructor(analyser, onDb = DEFAULT_ON_DB) {
    this.analyser = analyser;
    this.onDb = onDb;
    this.buffer = new Float32Array(analyser.fftSize);
    this.speaking = false;
    this.lastVoice = 0;
    this.db = -Infinity;
  }

  /**
   * @param {number} now milliseconds (performance.now())
   * @returns {boolean} whether the speaking state changed
   */
  update(now) {
    this.db = levelDb(this.analyser, this.buffer);
    const before = this.speaking;
    if (this.db > this.onDb || (this.speaking && this.db > this.onDb - HYSTERESIS_DB)) {
      this.lastVoice = now;
      this.speaking = true;
    } else if (this.speaking && now - this.lastVoice > HANG_MS) {
      this.speaking = false;
    }
    return before !== this.speaking;
  }
}

/**
 * Whether a level the server reports (RFC 6464 -dBov, for people whose voice the page does not receive)
 * counts as speaking, by the default onset threshold (the one a person chooses applies to their own microphone:
 * how loud someone else arrives depends on their microphone, not on this page).
 * @param {number} level
 * @returns {boolean}
 */
export function levelIsSpeaking(level) {
  return -level > DEFAULT_ON_DB;
}

// 0..1 for a level meter: -60 dBFS and below is empty, 0 dBFS is full.
/** @param {number} db */
export function meterFraction(db) {
  return Number.isFinite(db) ? Math.min(1, Math.max(0, (db + 60) / 60)) : 0;
}
