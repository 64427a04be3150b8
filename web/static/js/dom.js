// @ts-check
// Typed look-ups in the page's own markup, and text-only element creation. A missing or different element is
// a bug in the page, so a look-up throws at once with the id or selector rather than failing later on a null.

/**
 * The element with this id, checked to be a `type` (HTMLElement unless given).
 * @template {Element} [T=HTMLElement]
 * @param {string} id
 * @param {{ new (): T, prototype: T }} [type]
 * @returns {T}
 */
export function byId(id, type) {
  return checked(document.getElementById(id), `#${id}`, type);
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
  return checked(root.querySelector(selector), selector, type);
}

/**
 * @template {Element} T
 * @param {Element | null} el
 * @param {string} what the id or selector, for the error
 * @param {{ new (): T, prototype: T } | undefined} type
 * @returns {T}
 */
function checked(el, what, type) {
  const wanted = type ?? HTMLElement;
  if (!(el instanceof wanted)) throw new Error(`${what}: ${el ? 'not a ' + wanted.name : 'missing'}`);
  // Checked just above; the default (HTMLElement when no type is given) is what T defaults to.
  return /** @type {T} */ (/** @type {unknown} */ (el));
}

/**
 * A new element holding `text` as text (never as markup: what it shows may come from strangers).
 * @template {keyof HTMLElementTagNameMap} K
 * @param {K} tag
 * @param {string | number | null} [text]
 * @param {string} [className]
 * @returns {HTMLElementTagNameMap[K]}
 */
export function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}
