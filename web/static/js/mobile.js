// @ts-check
// Phone concerns: keep the screen awake while in a room, and resume audio that the browser suspended
// until a gesture (autoplay rules, iOS interruptions) on the next touch or key press.

export class WakeLock {
  constructor() {
    /** @type {WakeLockSentinel | null} */
    this.sentinel = null;
    this.wanted = false;
    // The browser drops the lock whenever the page is hidden; take it again on return.
    document.addEventListener('visibilitychange', () => {
      if (this.wanted && document.visibilityState === 'visible') void this.acquire();
    });
  }

  async acquire() {
    this.wanted = true;
    if (!('wakeLock' in navigator) || this.sentinel) return;
    try {
      const sentinel = await navigator.wakeLock.request('screen');
      this.sentinel = sentinel;
      sentinel.addEventListener('release', () => {
        if (this.sentinel === sentinel) this.sentinel = null;
      });
    } catch {
      // Refused (battery saver, not visible): the call still works, the screen may just dim.
    }
  }

  release() {
    this.wanted = false;
    if (this.sentinel) this.sentinel.release().catch(() => {});
    this.sentinel = null;
  }
}

const GESTURES = ['pointerdown', 'keydown', 'touchend'];

/**
 * @param {() => void} resume
 * @returns {() => void} stops listening
 */
export function resumeOnGesture(resume) {
  for (const type of GESTURES) document.addEventListener(type, resume, { capture: true, passive: true });
  return () => {
    for (const type of GESTURES) document.removeEventListener(type, resume, { capture: true });
  };
}
