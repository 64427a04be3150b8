// Preferences in localStorage. Storage can be missing or throw (private mode, blocked cookies):
// then the page simply forgets, it never breaks.
const PREFIX = 'ghosttalk.';

export function loadPref(key, fallback) {
  try {
    const raw = window.localStorage.getItem(PREFIX + key);
    return raw === null ? fallback : JSON.parse(raw);
  } catch {
    return fallback;
  }
}

export function savePref(key, value) {
  try {
    window.localStorage.setItem(PREFIX + key, JSON.stringify(value));
  } catch {
    // Not being able to remember a preference is not worth bothering the person about.
  }
}
