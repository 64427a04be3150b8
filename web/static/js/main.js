// Entry point: language first (every visible string is translated), then the view the server rendered.
import { LANGUAGES, language, preferredLanguage, setLanguage } from './i18n.js';

function pageData() {
  const block = document.getElementById('page-data');
  try {
    return JSON.parse(block.textContent);
  } catch {
    return { view: 'landing' };
  }
}

async function initLanguage() {
  const select = document.getElementById('lang-select');
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

async function main() {
  const data = pageData();
  await initLanguage();
  if (data.view === 'landing') {
    const { initLanding } = await import('./landing.js');
    initLanding();
  } else if (data.view === 'room') {
    const { RoomPage } = await import('./room.js');
    new RoomPage(data);
  }
  document.documentElement.dataset.ready = 'true';
}

main();
