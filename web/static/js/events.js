// @ts-check
// EventTarget with typed events: each subclass names its events and what each one carries, and the
// checker holds emitters and listeners to that list.

/**
 * @template {Record<string, unknown>} Events event type -> the detail its listeners receive
 */
export class Emitter extends EventTarget {
  /**
   * @template {keyof Events & string} K
   * @param {K} type
   * @param {(detail: Events[K]) => void} listener
   */
  on(type, listener) {
    this.addEventListener(type, (event) => listener(/** @type {CustomEvent<Events[K]>} */ (event).detail));
  }

  /**
   * @template {keyof Events & string} K
   * @param {K} type
   * @param {Events[K]} [detail] left out for events that carry nothing
   */
  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}
