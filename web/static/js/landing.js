// @ts-check
// The landing page: make a fresh room (end-to-end encrypted unless asked otherwise), or open one from a
// pasted link or name.
import { ROOM_ID } from './contract.js';
import { byId } from './dom.js';
import { newSecret } from './e2ee.js';
import { setText } from './i18n.js';
import { show } from './ui.js';

// 16 random bytes (128 bits) in URL-safe base64 without padding: 22 characters, unguessable.
export function newRoomId() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  const base64 = btoa(String.fromCharCode(...bytes));
  return base64.replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

// A pasted link (any host) or a bare room name → where to go, or null when it names no room. A link's
// fragment is its room's key: it goes along (the page that opens judges whether it is a whole key).
/**
 * @param {string} text
 * @returns {string | null}
 */
export function roomTarget(text) {
  const value = text.trim();
  if (ROOM_ID.test(value)) return `/r/${value}`;
  let url;
  try {
    url = new URL(value, window.location.origin);
  } catch {
    return null;
  }
  const match = /^\/r\/([^/]+)\/?$/.exec(url.pathname);
  if (!match || !ROOM_ID.test(match[1]) || !/^https?:$/.test(url.protocol)) return null;
  const path = `/r/${match[1]}${url.hash}`;
  return url.origin === window.location.origin ? path : `${url.origin}${path}`;
}

export function initLanding() {
  byId('btn-create').addEventListener('click', () => {
    window.location.assign(`/r/${newRoomId()}#${newSecret()}`);
  });
  byId('btn-create-plain').addEventListener('click', () => {
    window.location.assign(`/r/${newRoomId()}`);
  });
  byId('open-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const error = byId('open-error');
    const target = roomTarget(byId('room-link', HTMLInputElement).value);
    if (target) {
      window.location.assign(target);
      return;
    }
    setText(error, 'err_bad_link');
    show(error, true);
  });
}
