// @ts-check
// Before the room: the nickname rule and plain-language explanations of why the microphone is missing.

import { NAME_MAX_CHARS } from './contract.js';
import { RULE } from './nickname-rule.js';

// The server's rule (ghosttalk/contract/nickname.py) read from the same generated table of code point
// classes, so the page refuses exactly what the server would: trimmed of white space, 1–12 code points,
// nothing refused inside, and at least one visible character.
const RUN_STARTS = RULE.gaps.reduce((/** @type {number[]} */ starts, gap) => {
  starts.push((starts.length ? starts[starts.length - 1] : 0) + gap);
  return starts;
}, []);

/**
 * @param {number} codePoint
 * @returns {string} its class letter
 */
function classOf(codePoint) {
  let low = 0;
  let high = RUN_STARTS.length - 1;
  while (low < high) {
    const middle = (low + high + 1) >> 1;
    if (RUN_STARTS[middle] <= codePoint) low = middle;
    else high = middle - 1;
  }
  return RULE.classes[low];
}

const TRIMMED = new Set(['S', 'T']);

/** @typedef {{ name: string, error?: undefined } | { error: string, name?: undefined }} NameCheck */

/**
 * @param {string} raw as typed
 * @returns {NameCheck} the nickname as the server will keep it, or the key of what is wrong with it
 */
export function checkNickname(raw) {
  // Code points, as the server counts: a lone surrogate stays one (and is refused below).
  const chars = [...raw];
  const kinds = chars.map((char) => classOf(/** @type {number} */ (char.codePointAt(0))));
  let start = 0;
  let end = kinds.length;
  while (start < end && TRIMMED.has(kinds[start])) start += 1;
  while (end > start && TRIMMED.has(kinds[end - 1])) end -= 1;
  const inside = kinds.slice(start, end);
  if (inside.length === 0) return { error: 'err_name_empty' };
  if (inside.length > NAME_MAX_CHARS) return { error: 'err_name_long' };
  if (inside.includes('R') || inside.includes('T')) return { error: 'err_name_chars' };
  if (!inside.includes('V')) return { error: 'err_name_invisible' };
  return { name: chars.slice(start, end).join('') };
}

// Why the page cannot use a microphone at all, before asking for it.
/** @returns {string | null} the message's key, null when nothing stands in the way */
export function micUnavailable() {
  if (!window.isSecureContext) return 'err_insecure';
  // Absent on insecure pages and in old browsers, whatever the DOM types promise.
  const devices = /** @type {MediaDevices | undefined} */ (navigator.mediaDevices);
  if (!devices || typeof devices.getUserMedia !== 'function') return 'err_no_media';
  if (typeof RTCPeerConnection !== 'function') return 'err_no_webrtc';
  return null;
}

/**
 * @param {unknown} error what getUserMedia rejected with
 * @returns {string} the message's key
 */
export function micErrorKey(error) {
  switch (errorName(error)) {
    case 'NotAllowedError':
    case 'SecurityError':
      return 'err_mic_denied';
    case 'NotFoundError':
    case 'OverconstrainedError':
      return 'err_mic_missing';
    case 'NotReadableError':
    case 'AbortError':
      return 'err_mic_busy';
    default:
      return 'err_mic_other';
  }
}

/**
 * @param {unknown} error
 * @returns {string} its name ('NotAllowedError'...), '' when it has none
 */
export function errorName(error) {
  if (typeof error !== 'object' || error === null || !('name' in error)) return '';
  return typeof error.name === 'string' ? error.name : '';
}

// A device remembered from an earlier visit may be gone; fall back to the default one.
/**
 * @param {import('./audio.js').AudioEngine} engine
 * @param {import('./audio.js').MicSettings} options
 */
export async function openMicWithFallback(engine, options) {
  try {
    await engine.openMic(options);
  } catch (error) {
    if (!options.deviceId || !['OverconstrainedError', 'NotFoundError'].includes(errorName(error))) throw error;
    await engine.openMic({ ...options, deviceId: '' });
  }
}
