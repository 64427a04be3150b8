// @ts-check
// Voice activity from an AnalyserNode: RMS level with an onset threshold and a hang time, so that the
// speaking glow neither flickers between syllables nor lights up on background hiss.
const ON_DB = -48;
const OFF_DB = -56;
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

export class VoiceActivity {
  /** @param {AnalyserNode} analyser */
  constructor(analyser) {
    this.analyser = analyser;
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
    if (this.db > ON_DB || (this.speaking && this.db > OFF_DB)) {
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
 * counts as speaking, by the same onset threshold as the page's own detector.
 * @param {number} level
 * @returns {boolean}
 */
export function levelIsSpeaking(level) {
  return -level > ON_DB;
}

// 0..1 for a level meter: -60 dBFS and below is empty, 0 dBFS is full.
/** @param {number} db */
export function meterFraction(db) {
  return Number.isFinite(db) ? Math.min(1, Math.max(0, (db + 60) / 60)) : 0;
}
