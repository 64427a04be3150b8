// @ts-check
// Rendering of the room: avatar grid, people list, status banner. Markup comes from <template>s in the
// page; this module only clones and fills them.
import { byId, find } from './dom.js';
import { setText, t, translate } from './i18n.js';

/** @typedef {import('./session.js').Peer} Peer */
/** @typedef {{ tile: HTMLElement, person: HTMLElement }} PeerNodes the grid tile and list row of one person */
/** @typedef {(peerId: string, button: HTMLElement) => void} MenuOpener what a person's menu button does */

const segmenter = typeof Intl.Segmenter === 'function'
  ? new Intl.Segmenter(undefined, { granularity: 'grapheme' })
  : null;

/**
 * @param {string} text
 * @returns {string[]}
 */
function graphemes(text) {
  return segmenter ? [...segmenter.segment(text)].map((part) => part.segment) : [...text];
}

// Han, kana and Hangul names read well with one character; Latin-like names get two initials.
const ONE_CHARACTER = /[\p{Script=Han}\p{Script=Hiragana}\p{Script=Katakana}\p{Script=Hangul}]/u;

/**
 * @param {string} name
 * @returns {string}
 */
export function initialsOf(name) {
  const words = name.trim().split(/\s+/u).filter(Boolean);
  if (words.length === 0) return '?';
  const first = graphemes(words[0]);
  if (ONE_CHARACTER.test(first[0])) return first[0];
  if (words.length > 1) return (first[0] + graphemes(words[1])[0]).toUpperCase();
  return first.slice(0, 2).join('').toUpperCase();
}

// A stable hue per peer id, so that a person keeps their colour for the whole visit.
/**
 * @param {string} id
 * @returns {number} 0..359
 */
export function hueOf(id) {
  let hash = 2166136261;
  for (const ch of id) hash = Math.imul(hash ^ /** @type {number} */ (ch.codePointAt(0)), 16777619) >>> 0;
  return hash % 360;
}

/**
 * @param {Element} el
 * @param {boolean} visible
 */
export function show(el, visible) {
  el.classList.toggle('hidden', !visible);
}

export class PeopleView {
  constructor() {
    this.grid = byId('grid');
    this.list = byId('people-list');
    this.count = byId('people-count');
    this.tileTemplate = byId('tpl-tile', HTMLTemplateElement);
    this.personTemplate = byId('tpl-person', HTMLTemplateElement);
    /** @type {Map<string, PeerNodes>} */
    this.nodes = new Map();
    /** @type {Map<string, Peer>} the people last rendered, kept to redraw when the host changes */
    this.peers = new Map();
    /** @type {string | null} */
    this.selfId = null;
    /** @type {string | null} */
    this.hostId = null;
    this.manage = false; // this page hosts: each other person gets a menu button
    /** @type {MenuOpener | null} */
    this.onMenu = null;
  }

  /**
   * Who hosts (a crown for everyone), and whether this page does (menu buttons on the others).
   * @param {string | null} hostId
   * @param {boolean} manage
   */
  setHost(hostId, manage) {
    this.hostId = hostId;
    this.manage = manage;
    this.render(this.peers, this.selfId);
  }

  /**
   * While the connection is rebuilt the last known people stay, greyed and labelled, rather than vanish.
   * @param {boolean} reconnecting
   */
  setReconnecting(reconnecting) {
    for (const { tile, person } of this.nodes.values()) {
      tile.classList.toggle('is-reconnecting', reconnecting);
      person.classList.toggle('is-reconnecting', reconnecting);
    }
  }

  /**
   * @param {Map<string, Peer>} peers
   * @param {string | null} selfId
   */
  render(peers, selfId) {
    this.peers = peers;
    this.selfId = selfId;
    for (const [id, nodes] of this.nodes) {
      if (!peers.has(id)) {
        nodes.tile.remove();
        nodes.person.remove();
        this.nodes.delete(id);
      }
    }
    for (const peer of peers.values()) {
      let nodes = this.nodes.get(peer.id);
      if (!nodes) {
        nodes = this.create(peer);
        this.nodes.set(peer.id, nodes);
      }
      this.fill(nodes, peer, peer.id === selfId);
    }
    this.count.textContent = String(peers.size);
  }

  /**
   * @param {Peer} peer
   * @returns {PeerNodes}
   */
  create(peer) {
    const tile = /** @type {HTMLElement} */ (find(this.tileTemplate.content, '*').cloneNode(true));
    const person = /** @type {HTMLElement} */ (find(this.personTemplate.content, '*').cloneNode(true));
    for (const el of [tile, person]) {
      el.dataset.peerId = peer.id;
      el.style.setProperty('--hue', String(hueOf(peer.id)));
      // Template content is outside the document, so the language pass has not reached it yet.
      translate(el);
      const menu = find(el, '.person-menu');
      menu.addEventListener('click', () => this.onMenu?.(peer.id, menu));
    }
    this.grid.append(tile);
    this.list.append(person);
    return { tile, person };
  }

  /**
   * @param {PeerNodes} nodes
   * @param {Peer} peer
   * @param {boolean} isSelf
   */
  fill({ tile, person }, peer, isSelf) {
    for (const el of [tile, person]) {
      el.dataset.name = peer.name;
      el.classList.toggle('is-self', isSelf);
      el.classList.toggle('is-muted', peer.muted);
      el.classList.toggle('is-host', peer.id === this.hostId);
      find(el, '.initials').textContent = initialsOf(peer.name);
      const menu = find(el, '.person-menu');
      show(menu, this.manage && !isSelf);
      // Named after the person, in whichever language the page shows later too.
      menu.dataset.i18nVars = JSON.stringify({ name: peer.name });
      menu.setAttribute('aria-label', t('host_menu_label', { name: peer.name }));
    }
    find(tile, '.tile-nick').textContent = peer.name;
    find(person, '.person-name').textContent = peer.name;
  }

  /**
   * @param {string} id
   * @param {boolean} speaking
   */
  setSpeaking(id, speaking) {
    const nodes = this.nodes.get(id);
    if (!nodes) return;
    nodes.tile.classList.toggle('is-speaking', speaking);
    nodes.person.classList.toggle('is-speaking', speaking);
  }

  clear() {
    this.render(new Map(), null);
  }
}

export class StatusBanner {
  /** @param {HTMLElement} el */
  constructor(el) {
    this.el = el;
  }

  /**
   * @param {string} key
   * @param {import('./i18n.js').Vars | null} [vars]
   * @param {'info' | 'ok' | 'warn' | 'error'} [tone]
   */
  show(key, vars, tone = 'info') {
    this.el.dataset.tone = tone;
    setText(this.el, key, vars);
    show(this.el, true);
  }

  // Hides the banner only if it still says one of these (a later message may have replaced it).
  /** @param {...string} keys */
  hideIf(...keys) {
    if (keys.includes(this.el.dataset.i18n ?? '')) this.hide();
  }

  hide() {
    show(this.el, false);
    delete this.el.dataset.i18n;
    this.el.textContent = '';
  }
}
