// @ts-check
// Every key and value of an end-to-end encrypted room, derived from its secret (docs/E2EE.md "Derivations"):
// HKDF-SHA-256 with the room id as salt and a label as info. Shared by the page and the transform worker.

const encoder = new TextEncoder();

/**
 * @param {string} room
 * @param {string} label
 * @returns {HkdfParams}
 */
function hkdf(room, label) {
  return { name: 'HKDF', hash: 'SHA-256', salt: encoder.encode(`ghosttalk/${room}`), info: encoder.encode(label) };
}

/**
 * @param {CryptoKey} base the secret as a non-extractable HKDF key
 * @param {string} room
 * @param {string} label
 * @param {number} length bytes
 */
export async function deriveBytes(base, room, label, length) {
  return new Uint8Array(await crypto.subtle.deriveBits(hkdf(room, label), base, length * 8));
}

/**
 * A non-extractable AES-256-GCM key.
 * @param {CryptoKey} base
 * @param {string} room
 * @param {string} label
 */
export function deriveAesKey(base, room, label) {
  return crypto.subtle.deriveKey(hkdf(room, label), base, { name: 'AES-GCM', length: 256 }, false,
    ['encrypt', 'decrypt']);
}
