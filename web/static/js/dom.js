// @ts-check
// Typed look-ups in the page's own markup. A missing or different element is a bug in the page, so it
// throws at once with the id or selector rather than failing later on a null.

/**
 * The element with this id, checked to be a `type` (HTMLElement unless given).
 * @template {Element} [T=HTMLElement]
 * @param {string} id
 * @param {{ new (): T, prototype: T }} [type]
 * @returns {T}
 */
export function byId(id, type) {
  const el = document.getElementById(id);
  const wanted = type ?? HTMLElement;
  if (!(el instanceof wanted)) throw new Error(`#${id}: ${el ? 'not a ' + wanted.name : 'missing'}`);
  // Checked just above; the default (HTMLElement when no type is given) is what T defaults to.
  return /** @type {T} */ (/** @type {unknown} */ (el));
}

/**
 * The first element under `root` matching `selector`, checked to be a `type` (HTMLElement unless given).
 * @template {Element} [T=HTMLElement]
 * @param {ParentNode} root
 * @param {string} selector
 * @param {{ new (): T, prototype: T }} [type]
 * @returns {T}
 */
export function find(root, selector, type) {
  const el = root.querySelector(selector);
  const wanted = type ?? HTMLElement;
  if (!(el instanceof wanted)) throw new Error(`${selector}: ${el ? 'not a ' + wanted.name : 'missing'}`);
  // Checked just above; the default (HTMLElement when no type is given) is what T defaults to.
  return /** @type {T} */ (/** @type {unknown} */ (el));
}
