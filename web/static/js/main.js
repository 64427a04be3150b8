// @ts-check
// Entry point: language first (every visible string is translated), then the view the server rendered.
import { byId } from './dom.js';
import { bindLanguageSelect } from './i18n.js';

/** @typedef {{ view: string, room?: string }} PageData what the server rendered (base.html's #page-data) */

/** @returns {PageData} */
function pageData() {
  try {
    /** @type {unknown} */
    const data = JSON.parse(byId('page-data').textContent ?? '');
    return /** @type {PageData} */ (data);
  } catch {
    return { view: 'landing' };
  }
}

async function main() {
  const data = pageData();
  await bindLanguageSelect(byId('lang-select', HTMLSelectElement));
  if (data.view === 'landing') {
    const { initLanding } = await import('./landing.js');
    initLanding();
  } else if (data.view === 'room') {
    const { RoomPage } = await import('./room.js');
    new RoomPage({ room: data.room ?? '' });
  }
  document.documentElement.dataset.ready = 'true';
}

// Nothing above is expected to fail; if something does, the console says what (the page stays unready).
main().catch((error) => console.error('GhostTalk could not start:', error));
