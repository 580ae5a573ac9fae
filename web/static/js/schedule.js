// The schedule follows shows going live and ending without a reload (issue 15, item 8).
// No room event reaches this page (`show_status` goes to each show's own room, and a
// socket per listed show would cost more than it gives), so while the tab is visible it
// asks GET /api/shows every 20 s; when a show's status differs from its card's (or a
// show is new or gone), the page is loaded again as the server renders it.
import { api } from './page.js';

const POLL_MS = 20_000;

function shown() {
  const statuses = new Map();
  for (const card of document.querySelectorAll('.show-card[data-show-id]')) {
    const match = /(?:^|\s)status-([a-z]+)/.exec(card.className);
    statuses.set(Number(card.dataset.showId), match ? match[1] : '');
  }
  return statuses;
}

let busy = false;

async function check() {
  if (busy || document.visibilityState !== 'visible') return;
  busy = true;
  try {
    const reply = await api('GET', '/api/shows');
    if (!reply.ok || !Array.isArray(reply.data)) return;
    const cards = shown();
    const changed =
      reply.data.length !== cards.size || reply.data.some((show) => cards.get(show.id) !== show.status);
    if (changed) window.location.reload();
  } finally {
    busy = false;
  }
}

setInterval(check, POLL_MS);
document.addEventListener('visibilitychange', () => {
  if (document.visibilityState === 'visible') check();
});
