// Every visible string lives in /static/i18n/<lang>.json. Markup names its string with data-i18n
// (text) or data-i18n-attr="attr:key;attr:key"; data-i18n-vars holds JSON values for {placeholders}.
import { loadPref, savePref } from './prefs.js';

export const LANGUAGES = ['en', 'zh'];
const HTML_LANG = { en: 'en', zh: 'zh-CN' };

let strings = {};
let current = 'en';
const listeners = new Set();

export function preferredLanguage() {
  const saved = loadPref('lang', null);
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

export function t(key, vars = {}) {
  const text = Object.hasOwn(strings, key) ? strings[key] : key;
  return text.replace(/\{(\w+)\}/g, (whole, name) => (Object.hasOwn(vars, name) ? String(vars[name]) : whole));
}

function varsOf(el) {
  try {
    return el.dataset.i18nVars ? JSON.parse(el.dataset.i18nVars) : {};
  } catch {
    return {};
  }
}

export function translate(root = document) {
  const scope = root === document ? document.documentElement : root;
  const withText = [...scope.querySelectorAll('[data-i18n]')];
  if (scope.matches('[data-i18n]')) withText.push(scope);
  for (const el of withText) el.textContent = t(el.dataset.i18n, varsOf(el));
  for (const el of scope.querySelectorAll('[data-i18n-attr]')) {
    for (const pair of el.dataset.i18nAttr.split(';')) {
      const [attr, key] = pair.split(':');
      if (attr && key) el.setAttribute(attr.trim(), t(key.trim(), varsOf(el)));
    }
  }
}

// Point an element at a string (and its values) so that a later language switch re-translates it too.
export function setText(el, key, vars) {
  el.dataset.i18n = key;
  if (vars) el.dataset.i18nVars = JSON.stringify(vars);
  else delete el.dataset.i18nVars;
  el.textContent = t(key, vars);
}

export async function setLanguage(lang, { remember = false } = {}) {
  const wanted = LANGUAGES.includes(lang) ? lang : 'en';
  const response = await fetch(`/static/i18n/${wanted}.json`);
  if (!response.ok) throw new Error(`language ${wanted}: HTTP ${response.status}`);
  strings = await response.json();
  current = wanted;
  document.documentElement.lang = HTML_LANG[wanted];
  if (remember) savePref('lang', wanted);
  translate(document);
  for (const listener of listeners) listener(wanted);
}

export function onLanguageChange(listener) {
  listeners.add(listener);
}
