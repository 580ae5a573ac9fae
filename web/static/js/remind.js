// "Remind me" on scheduled shows: one e-mail when the show goes live
// (POST/DELETE /api/shows/{id}/remind; orders/notifications.py). The button's two
// labels come translated in its data-on / data-off attributes.
import { api } from './page.js';

for (const button of document.querySelectorAll('[data-remind]')) {
  button.addEventListener('click', async () => {
    const on = button.getAttribute('aria-pressed') !== 'true';
    button.disabled = true;
    const reply = await api(on ? 'POST' : 'DELETE', `/api/shows/${button.dataset.remind}/remind`);
    button.disabled = false;
    if (reply.ok) {
      button.setAttribute('aria-pressed', String(on));
      button.textContent = on ? button.dataset.on : button.dataset.off;
    } else if (reply.data.message) {
      button.title = reply.data.message;
    }
  });
}
