// The studio's quotes panel: the quote requests asked in this show (GET
// /api/quotes?show_id=, which gives a host only their own shows' quotes), each with an
// offer form — a unit price typed in the product's currency, sent in minor units, and
// the days it is valid — over POST /api/quotes/{id}/answer. Nothing tells the studio
// of a new request, so the list is read again every 20 s while the tab is visible, and
// on Refresh. Text goes into the page with textContent only.

import { $, api, clearErrors, el, formatMoney, intlLocale, page, showErrors, t, toMinor } from './page.js';

const text = JSON.parse($('studio-quotes-text').textContent || '{}');
const list = $('studio-quotes');
const note = $('quotes-note');
const products = { ...(page.products || {}) };
const REFRESH_MS = 20_000;
let editing = false; // a half-typed offer is not wiped by a refresh

const fill = (template, vars) => template.replace(/\{(\w+)\}/g, (whole, name) => (name in vars ? String(vars[name]) : whole));

const dateFormat = new Intl.DateTimeFormat(intlLocale, { dateStyle: 'medium', timeStyle: 'short' });

/** The product of a quote: from the line-up in the page data, else asked once. */
async function productOf(quote) {
  const key = String(quote.product_id);
  if (!products[key]) {
    const reply = await api('GET', `/api/products/${encodeURIComponent(quote.product_id)}`);
    products[key] = reply.ok ? reply.data : { id: quote.product_id, name: `#${quote.product_id}`, currency: quote.currency };
  }
  return products[key];
}

function answerForm(quote, currency) {
  const form = el('form', { class: 'quote-answer-form', 'data-quote-id': quote.id, novalidate: true });
  const price = el('label', {}, fill(text.unit_price, { currency }));
  price.append(' ', el('input', { name: 'unit_price', inputmode: 'decimal', size: 10 }),
    el('span', { class: 'field-error', 'data-for': 'unit_price' }));
  const days = el('label', {}, text.valid_days);
  days.append(' ', el('input', { name: 'valid_days', type: 'number', min: 1, max: 180, value: 14, size: 4 }),
    el('span', { class: 'field-error', 'data-for': 'valid_days' }));
  const error = el('p', { class: 'form-error', role: 'alert', hidden: true });
  const send = el('button', { type: 'submit', class: 'secondary' }, quote.status === 'answered' ? text.revise : text.send);
  form.append(price, days, error, send);
  form.addEventListener('focusin', () => (editing = true));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(form);
    send.disabled = true;
    const body = {
      unit_price: toMinor(form.elements.unit_price.value, currency),
      valid_days: Number(form.elements.valid_days.value),
    };
    const reply = await api('POST', `/api/quotes/${encodeURIComponent(quote.id)}/answer`, body);
    send.disabled = false;
    if (reply.ok) {
      editing = false;
      const item = await quoteItem(reply.data);
      form.closest('li').replaceWith(item);
      return;
    }
    if (reply.data.error === 'price_needs_admin') {
      const slot = form.querySelector('.field-error[data-for="unit_price"]');
      slot.textContent = fill(text.needs_admin, { price: formatMoney(reply.data.min_unit_price, currency) });
      slot.title = reply.data.message || '';
      form.elements.unit_price.setAttribute('aria-invalid', 'true');
    } else if (reply.data.error === 'own_quote') {
      showErrors(form, {}, text.own_quote);
    } else {
      showErrors(form, reply.data);
    }
  });
  return form;
}

async function quoteItem(quote) {
  const product = await productOf(quote);
  const currency = quote.currency || product.currency;
  const item = el('li', { 'data-quote-id': quote.id, 'data-status': quote.status });
  const head = el('p', { class: 'quote-head' });
  head.append(el('strong', {}, `#${quote.id} · ${quote.quantity} × ${product.name}`), ' ',
    el('span', { class: 'chip quote-state' }, t(`quote_status_${quote.status}`)));
  item.append(head, el('p', { class: 'meta' }, `${quote.destination_country} · ${quote.incoterm}`));
  if (quote.note) item.append(el('p', { class: 'quote-note' }, quote.note));
  if (quote.unit_price !== null && quote.unit_price !== undefined) {
    item.append(el('p', { class: 'quote-price', 'data-testid': 'quote-offer' }, fill(text.offer, {
      price: formatMoney(quote.unit_price, quote.currency),
      total: formatMoney(quote.total, quote.currency),
      until: quote.valid_until ? dateFormat.format(new Date(quote.valid_until)) : '',
    })));
  }
  if (quote.order_id) item.append(el('p', { class: 'meta' }, fill(text.order, { id: quote.order_id })));
  if ((quote.status === 'requested' || quote.status === 'answered') && currency) item.append(answerForm(quote, currency));
  return item;
}

async function load() {
  if (editing) return;
  const reply = await api('GET', `/api/quotes?show_id=${encodeURIComponent(page.show_id)}`);
  if (!reply.ok) {
    note.textContent = reply.data.message || t('try_again');
    return;
  }
  note.textContent = '';
  const items = reply.data.length ? await Promise.all(reply.data.map(quoteItem)) : [el('li', { class: 'empty' }, text.none)];
  if (editing) return; // the host began typing while the list was read
  list.replaceChildren(...items);
  list.dataset.loaded = 'true'; // the browser tests wait for it
}

$('refresh-quotes').addEventListener('click', () => {
  editing = false;
  load();
});
list.addEventListener('focusout', (event) => {
  // Leaving the offer forms altogether with nothing typed lets the refresh run again.
  if (!list.contains(event.relatedTarget)) {
    editing = [...list.querySelectorAll('input[name="unit_price"]')].some((input) => input.value.trim() !== '');
  }
});
setInterval(() => {
  if (document.visibilityState === 'visible') load();
}, REFRESH_MS);
load();
