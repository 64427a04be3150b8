// @ts-check
// Every visible string lives in /static/i18n/<lang>.json. Markup names its string with data-i18n
// (text) or data-i18n-attr="attr:key;attr:key"; data-i18n-vars holds JSON values for {placeholders}.
import { loadPref, savePref } from './prefs.js';

export const LANGUAGES = ['en', 'zh'];
/** @type {Record<string, string>} */
const HTML_LANG = { en: 'en', zh: 'zh-CN' };

/** @typedef {Record<string, unknown>} Vars values for a string's {placeholders} */

/** @type {Record<string, string>} */
let strings = {};
let current = 'en';
/** @type {Set<(lang: string) => void>} */
const listeners = new Set();

export function preferredLanguage() {
  const saved = loadPref('lang', '');
  if (LANGUAGES.includes(saved)) return saved;
  for (const tag of navigator.languages || [navigator.language || 'en']) {
    const base = String(tag).toLowerCase().split('-')[0];
    if (LANGUAGES.includes(base)) return base;
  }
  return 'en';
}

export function language() {
  return current;
}

/**
 * The string `key` in the current language with its {placeholders} filled; the key itself when missing.
 * @param {string} key
 * @param {Vars} [vars]
 * @returns {string}
 */
export function t(key, vars = {}) {
  const text = Object.hasOwn(strings, key) ? strings[key] : key;
  /** @type {(whole: string, name: string) => string} */
  const fill = (whole, name) => (Object.hasOwn(vars, name) ? String(vars[name]) : whole);
  return text.replace(/\{(\w+)\}/g, fill);
}

/**
 * @param {HTMLElement} el
 * @returns {Vars}
 */
function varsOf(el) {
  try {
    return el.dataset.i18nVars ? /** @type {Vars} */ (JSON.parse(el.dataset.i18nVars)) : {};
  } catch {
    return {};
  }
}

/** @param {Document | HTMLElement} [root] */
export function translate(root = document) {
  const scope = root instanceof Document ? root.documentElement : root;
  // Marked elements are HTML or SVG; both have a dataset.
  const withText = /** @type {HTMLElement[]} */ ([...scope.querySelectorAll('[data-i18n]')]);
  if (scope.matches('[data-i18n]')) withText.push(scope);
  for (const el of withText) el.textContent = t(el.dataset.i18n ?? '', varsOf(el));
  for (const el of /** @type {NodeListOf<HTMLElement>} */ (scope.querySelectorAll('[data-i18n-attr]'))) {
    for (const pair of (el.dataset.i18nAttr ?? '').split(';')) {
      const [attr, key] = pair.split(':');
      if (attr && key) el.setAttribute(attr.trim(), t(key.trim(), varsOf(el)));
    }
  }
}

// Point an element at a string (and its values) so that a later language switch re-translates it too.
/**
 * @param {HTMLElement} el
 * @param {string} key
 * @param {Vars | null} [vars]
 */
export function setText(el, key, vars) {
  el.dataset.i18n = key;
  if (vars) el.dataset.i18nVars = JSON.stringify(vars);
  else delete el.dataset.i18nVars;
  el.textContent = t(key, vars ?? {});
}

/**
 * Loads `lang` (English when unknown) and re-translates the page.
 * @param {string} lang
 * @param {{ remember?: boolean }} [options] remember: keep the choice for the next visit
 */
export async function setLanguage(lang, { remember = false } = {}) {
  const wanted = LANGUAGES.includes(lang) ? lang : 'en';
  const response = await fetch(`/static/i18n/${wanted}.json`);
  if (!response.ok) throw new Error(`language ${wanted}: HTTP ${response.status}`);
  /** @type {unknown} */
  const loaded = await response.json();
  strings = /** @type {Record<string, string>} */ (loaded);
  current = wanted;
  document.documentElement.lang = HTML_LANG[wanted];
  if (remember) savePref('lang', wanted);
  translate(document);
  for (const listener of listeners) listener(wanted);
}

/** @param {(lang: string) => void} listener */
export function onLanguageChange(listener) {
  listeners.add(listener);
}

/**
 * Shows the preferred language (English when it cannot load) and lets `select` switch it; a switch is
 * remembered for every page.
 * @param {HTMLSelectElement} select
 */
export async function bindLanguageSelect(select) {
  try {
    await setLanguage(preferredLanguage());
  } catch {
    // The markup already reads in English; English strings keep the dynamic messages readable too.
    await setLanguage('en').catch(() => {});
  }
  select.value = language();
  select.addEventListener('change', () => {
    if (LANGUAGES.includes(select.value)) setLanguage(select.value, { remember: true }).catch(() => {});
  });
}
