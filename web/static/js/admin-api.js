// @ts-check
// The operator's key and the /admin JSON API the panel calls with it.

// Kept for this tab only, so that a reload does not ask again; closing the tab forgets it.
const KEY_STORE = "ghosttalk-admin-key";

// The key may come in the address (/admin#key=K, or /admin?key=K as the original had it). It is read once and
// taken out of the address bar at once, so that it stays in neither the history nor a bookmark; from then on
// it travels only in the X-Admin-Key header, which proxies do not write to their access logs.
export function takeKeyFromAddress() {
  const url = new URL(window.location.href);
  const fragment = new URLSearchParams(url.hash.slice(1));
  const found = fragment.get("key") ?? url.searchParams.get("key");
  if (found === null) return null;
  fragment.delete("key");
  url.searchParams.delete("key");
  url.hash = fragment.toString();
  window.history.replaceState(window.history.state, "", url.href);
  return found;
}

export function storedKey() {
  try {
    return window.sessionStorage.getItem(KEY_STORE);
  } catch {
    return null; // storage disabled: the key lives as long as the page
  }
}

/** @param {string | null} value */
export function storeKey(value) {
  try {
    if (value) window.sessionStorage.setItem(KEY_STORE, value);
    else window.sessionStorage.removeItem(KEY_STORE);
  } catch {
    // As above: without storage a reload asks for the key again.
  }
}

export class ApiError extends Error {
  /**
   * @param {number} status
   * @param {string} message
   * @param {string | null} [retryAfter] seconds, as the server's Retry-After header said
   */
  constructor(status, message, retryAfter = null) {
    super(message);
    this.status = status;
    this.retryAfter = retryAfter;
  }
}

// The JSON API with the operator's key, which travels only in the X-Admin-Key header. A proxy that injects the
// header itself works too: with no key here the first call shows whether it does.
export class AdminApi {
  /** @param {string | null} key */
  constructor(key) {
    this.key = key;
  }

  /**
   * @param {string} action
   * @param {{ method?: string, params?: Record<string, string> }} [options]
   * @returns {Promise<unknown>} the JSON answer; callers know its shape from the action
   */
  async call(action, { method = "GET", params = {} } = {}) {
    const query = new URLSearchParams({ action, ...params });
    /** @type {Record<string, string>} */
    const headers = this.key ? { "X-Admin-Key": this.key } : {};
    const response = await fetch(`/admin?${query}`, { method, headers, cache: "no-store" });
    /** @type {unknown} */
    let body = null;
    try {
      body = await response.json();
    } catch {
      // A proxy error page is not JSON; the status line below still says what happened.
    }
    if (!response.ok) {
      const error = typeof body === "object" && body !== null && "error" in body ? body.error : null;
      const message = typeof error === "string" ? error : `HTTP ${response.status}`;
      throw new ApiError(response.status, message, response.headers.get("Retry-After"));
    }
    return body;
  }
}
