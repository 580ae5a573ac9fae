// The admin page's exchange rates: the kept rates (GET /api/admin/exchange-rates), a
// form to set one (PUT, create or replace a pair) and Delete per row. The API is the one
// validator; its field errors land beside the field. Text goes in with textContent only.

import { $, api, clearErrors, el, intlLocale, showErrors, t } from './page.js';

const rows = $('rate-rows');
const form = $('rate-form');

function day(iso) {
  const [year, month, date] = String(iso).split('-').map(Number);
  return new Intl.DateTimeFormat(intlLocale, { dateStyle: 'medium', timeZone: 'UTC' })
    .format(new Date(Date.UTC(year, month - 1, date)));
}

function render(rates) {
  rows.replaceChildren();
  for (const rate of rates) {
    const remove = el('button', { type: 'button', class: 'secondary', 'data-testid': 'delete-rate' }, t('delete'));
    remove.addEventListener('click', async () => {
      remove.disabled = true;
      const reply = await api('DELETE', `/api/admin/exchange-rates/${encodeURIComponent(rate.base)}/${encodeURIComponent(rate.quote)}`);
      if (reply.ok || reply.status === 404) await refresh();
      else remove.disabled = false;
    });
    const row = el('tr', { 'data-pair': `${rate.base}-${rate.quote}` });
    row.append(
      el('td', {}, rate.base),
      el('td', {}, rate.quote),
      el('td', { class: 'rate' }, rate.rate),
      el('td', { title: rate.updated_at }, day(rate.as_of)),
      el('td'),
    );
    row.lastChild.append(remove);
    rows.append(row);
  }
}

// The rate as typed → a decimal string ("87.75"). With both "," and "." the last one is
// the decimal sign; a lone "." is one; a lone "," is one where the page's language writes
// decimals with it (Russian "87,75"), else it groups thousands (English "1,380").
const decimalComma = new Intl.NumberFormat(intlLocale).formatToParts(1.5).find((part) => part.type === 'decimal').value === ',';
function decimalText(typed) {
  const text = typed.trim().replace(/[\s\u00a0\u202f']/g, '');
  const comma = text.lastIndexOf(',');
  const dot = text.lastIndexOf('.');
  let mark = null;
  if (comma >= 0 && dot >= 0) mark = comma > dot ? ',' : '.';
  else if (dot >= 0) mark = text.indexOf('.') === dot ? '.' : null;
  else if (comma >= 0) mark = decimalComma && text.indexOf(',') === comma ? ',' : null;
  const at = mark === null ? -1 : text.lastIndexOf(mark);
  const whole = (at < 0 ? text : text.slice(0, at)).replace(/[.,]/g, '');
  return at < 0 ? whole : `${whole}.${text.slice(at + 1)}`;
}

async function refresh() {
  const reply = await api('GET', '/api/admin/exchange-rates');
  if (reply.ok) render(reply.data.rates);
}

if (form) {
  // Today in the admin's own calendar (the API refuses a date in the future).
  const now = new Date();
  form.as_of.value = `${now.getFullYear()}-${String(now.getMonth() + 1).padStart(2, '0')}-${String(now.getDate()).padStart(2, '0')}`;
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(form);
    const body = {
      base: form.base.value.trim().toUpperCase(),
      quote: form.quote.value.trim().toUpperCase(),
      rate: decimalText(form.rate.value), // a decimal string: exact, no float on the way
      as_of: form.as_of.value,
    };
    const button = form.querySelector('button[type=submit]');
    button.disabled = true;
    const reply = await api('PUT', '/api/admin/exchange-rates', body);
    button.disabled = false;
    if (!reply.ok) {
      showErrors(form, reply.data);
      return;
    }
    form.rate.value = '';
    await refresh();
  });
  refresh();
}
