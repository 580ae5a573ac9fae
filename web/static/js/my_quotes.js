// My quotes (web/templates/my_quotes.html): Accept (POST /api/quotes/{id}/accept: a
// pending order at the quoted price, linked here with Pay now) and Decline
// (…/decline). Text goes into the page with textContent only.

import { $, api, el, t } from './page.js';

const text = JSON.parse($('quotes-text').textContent || '{}');

function settle(card, quote) {
  card.dataset.status = quote.status;
  card.querySelector('.quote-state').textContent = t(`quote_status_${quote.status}`);
  for (const button of card.querySelectorAll('.accept-quote, .decline-quote')) button.remove();
  const order = quote.order;
  if (order) {
    const actions = card.querySelector('.quote-actions');
    actions.prepend(
      el('a', { href: `/orders/${Number(order.id)}`, 'data-testid': 'quote-order' }, text.order.replace('{id}', order.id)),
      ' ',
      el('span', { class: 'chip' }, t(`status_${order.status}`)),
      ' ',
      el('a', { class: 'button', href: `/orders/${Number(order.id)}/checkout` }, text.pay_now),
    );
  }
}

async function act(card, action, button) {
  const error = card.querySelector('.quote-error');
  error.textContent = '';
  for (const other of card.querySelectorAll('.quote-actions button')) other.disabled = true;
  const reply = await api('POST', `/api/quotes/${encodeURIComponent(card.dataset.quoteId)}/${action}`);
  if (reply.ok) {
    settle(card, reply.data);
    return;
  }
  for (const other of card.querySelectorAll('.quote-actions button')) other.disabled = false;
  if (reply.data.error === 'quote_expired') {
    error.textContent = text.expired;
    button.remove();
  } else if (reply.data.error === 'sold_out') {
    error.textContent = t('sold_out');
  } else {
    error.textContent = reply.data.message || t('try_again');
  }
}

for (const card of document.querySelectorAll('.quote-card')) {
  const accept = card.querySelector('.accept-quote');
  const decline = card.querySelector('.decline-quote');
  if (accept) accept.addEventListener('click', () => act(card, 'accept', accept));
  if (decline) decline.addEventListener('click', () => act(card, 'decline', decline));
}
