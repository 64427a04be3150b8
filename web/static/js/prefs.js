// @ts-check
// Preferences in localStorage. Storage can be missing or throw (private mode, blocked cookies):
// then the page simply forgets, it never breaks.
const PREFIX = 'ghosttalk.';

/**
 * @template T
 * @param {string} key
 * @param {T} fallback what to use when nothing (readable) is stored
 * @returns {T} what the page stored under `key` itself; callers check what they rely on
 */
export function loadPref(key, fallback) {
  try {
    const raw = window.localStorage.getItem(PREFIX + key);
    return raw === null ? fallback : /** @type {T} */ (JSON.parse(raw));
  } catch {
    return fallback;
  }
}

/**
 * @param {string} key
 * @param {unknown} value anything JSON can hold
 */
export function savePref(key, value) {
  try {
    window.localStorage.setItem(PREFIX + key, JSON.stringify(value));
  } catch {
    // Not being able to remember a preference is not worth bothering the person about.
  }
}
