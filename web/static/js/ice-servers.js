// @ts-check
// The STUN and TURN servers the page's connection uses, as the server lists them at /ice-servers.

/**
 * The STUN and TURN servers for one connection, asked afresh each time: TURN credentials expire.
 * @returns {Promise<RTCIceServer[]>}
 */
export async function fetchIceServers() {
  const response = await fetch('/ice-servers', { cache: 'no-store' });
  if (!response.ok) throw new Error(`/ice-servers: ${response.status}`);
  /** @type {unknown} */
  const servers = await response.json();
  if (!Array.isArray(servers)) throw new Error('/ice-servers: not a list');
  return servers.filter(isIceServer);
}

/**
 * @param {unknown} value
 * @returns {value is RTCIceServer}
 */
function isIceServer(value) {
  if (typeof value !== 'object' || value === null || !('urls' in value)) return false;
  const { urls } = value;
  return typeof urls === 'string' || (Array.isArray(urls) && urls.every((url) => typeof url === 'string'));
}
