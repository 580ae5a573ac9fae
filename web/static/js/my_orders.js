// My orders and an order's page (web/templates/my_orders.html, order.html): Cancel for a
// pending order, asked once more in place, then POST /api/orders/{id}/cancel and the
// page loaded again so its timeline says when; and, back from the card processor, a
// wait for the processor's confirmation (only its webhook pays an order).
// Text goes into the page with textContent only.

import { api, page, t } from './page.js';

for (const box of document.querySelectorAll('.order-actions')) {
  const cancel = box.querySelector('.cancel-order');
  if (!cancel) continue;
  const ask = box.querySelector('.cancel-confirm');
  const confirm = box.querySelector('.confirm-cancel');
  const error = box.querySelector('.order-error');
  cancel.addEventListener('click', () => {
    ask.hidden = false;
    cancel.hidden = true;
    confirm.focus();
  });
  box.querySelector('.keep-order').addEventListener('click', () => {
    ask.hidden = true;
    cancel.hidden = false;
  });
  confirm.addEventListener('click', async () => {
    confirm.disabled = true;
    error.textContent = '';
    const reply = await api('POST', `/api/orders/${encodeURIComponent(box.dataset.orderId)}/cancel`);
    // 409: paid or expired meanwhile; the page loaded again shows what it is now.
    if (reply.ok || reply.status === 409) {
      window.location.reload();
      return;
    }
    confirm.disabled = false;
    error.textContent = reply.data.message || t('try_again');
  });
}

// Back from Stripe with ?payment=success while the order is still pending: ask for it
// every 2 s (for 2 minutes) and show the page again once it moved on.
if (page.awaiting_webhook && page.order_id) {
  const started = Date.now();
  const timer = setInterval(async () => {
    if (Date.now() - started > 120_000) {
      clearInterval(timer);
      return;
    }
    const reply = await api('GET', `/api/orders/${encodeURIComponent(page.order_id)}`);
    if (reply.ok && reply.data.status && reply.data.status !== page.status) {
      clearInterval(timer);
      window.location.reload();
    }
  }, 2000);
}
