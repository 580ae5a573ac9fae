// Prices in the buyer's currency: "≈ 1 930,50 ₽" beside "22,00 $", from the exchange
// rates the admin keeps (GET /api/exchange-rates?to=…, fetched once per page and per
// choice). Buyers pay in the product's currency; this figure is only for reading.
//
// The conversion is the server's (orders/exchange_rates.py): the API sends, for each
// currency, the minor-unit factor as an integer fraction, and the amount is rounded once,
// half away from zero, in BigInt arithmetic, so page and server agree to the unit. The
// target currency's fraction digits come from the server too (Babel's, as the amounts).
//
// The buyer's currency is the page's (`page.currency`: the picker's cookie, else the
// account's country, else the page's language; web/money_format.py). A `<select
// id="currency-picker">` on the page changes it: a cookie remembers the choice.

import { $, api, el, intlLocale, page, t } from './page.js';

const COOKIE = 'livemall_currency';
const YEAR = 365 * 24 * 3600;

let target = page.currency || null;
let rates = null; // the API's answer for `target`
const shown = new Map(); // node -> [minor, currency], re-rendered when the rates change

function money(minor, currency, digits) {
  // An exact decimal string: Intl formats strings without going through a float.
  const negative = minor < 0n;
  const units = (negative ? -minor : minor).toString().padStart(digits + 1, '0');
  const text = digits ? `${units.slice(0, -digits)}.${units.slice(-digits)}` : units;
  const format = new Intl.NumberFormat(intlLocale, {
    style: 'currency', currency, minimumFractionDigits: digits, maximumFractionDigits: digits,
  });
  return format.format(`${negative ? '-' : ''}${text}`);
}

function day(iso) {
  const [year, month, date] = String(iso).split('-').map(Number);
  const when = new Date(Date.UTC(year, month - 1, date));
  return new Intl.DateTimeFormat(intlLocale, { dateStyle: 'medium', timeZone: 'UTC' }).format(when);
}

/** `minor` units of `currency` in the buyer's currency: {amount (BigInt minor units),
 * currency, as_of, rate} or null (same currency, no rate known, rates not loaded). */
export function convert(minor, currency) {
  if (!rates || currency === rates.to || !Number.isInteger(minor)) return null;
  const known = rates.conversions[currency];
  if (!known) return null;
  const [num, den] = known.factor.map(BigInt);
  const amount = BigInt(minor);
  const magnitude = (2n * (amount < 0n ? -amount : amount) * num + den) / (2n * den);
  return { amount: amount < 0n ? -magnitude : magnitude, currency: rates.to, as_of: known.as_of, rate: known.rate };
}

function render(node, minor, currency) {
  const converted = convert(minor, currency);
  node.hidden = converted === null;
  if (converted === null) {
    node.textContent = '';
    node.removeAttribute('title');
    delete node.dataset.asOf;
    return;
  }
  node.textContent = `≈ ${money(converted.amount, converted.currency, rates.exponent)}`;
  const rate = new Intl.NumberFormat(intlLocale, { maximumSignificantDigits: 8 }).format(Number(converted.rate));
  node.title = t('rate_of', { date: day(converted.as_of), source: currency, rate, target: converted.currency });
  node.dataset.asOf = converted.as_of;
}

/** Shows `minor` units of `currency` converted into `node` ("≈ …", the rate's date in
 * its title), or hides the node when no rate is known; kept up to date by itself. */
export function showApprox(node, minor, currency) {
  if (!node) return;
  shown.set(node, [minor, currency]);
  render(node, minor, currency);
}

function renderAll() {
  for (const [node, [minor, currency]] of shown) {
    if (node.isConnected) render(node, minor, currency);
    else shown.delete(node);
  }
}

function fillPicker() {
  const picker = $('currency-picker');
  if (!picker || !rates) return;
  const names = typeof Intl.DisplayNames === 'function' ? new Intl.DisplayNames(intlLocale, { type: 'currency' }) : null;
  picker.replaceChildren(...rates.currencies.map((code) => el('option', { value: code }, names ? `${code} · ${names.of(code)}` : code)));
  picker.value = rates.to;
  const holder = picker.closest('[data-currency-picker]');
  if (holder) holder.hidden = rates.currencies.length < 2;
}

async function load(currency) {
  if (!currency) return;
  const reply = await api('GET', `/api/exchange-rates?to=${encodeURIComponent(currency)}`);
  if (!reply.ok || currency !== target) return; // a later choice wins
  rates = reply.data;
  fillPicker();
  renderAll();
  document.documentElement.dataset.rates = 'loaded'; // for tests: conversions are known
}

const picker = $('currency-picker');
if (picker) {
  picker.addEventListener('change', () => {
    target = picker.value;
    const secure = window.location.protocol === 'https:' ? '; secure' : '';
    document.cookie = `${COOKIE}=${encodeURIComponent(target)}; path=/; max-age=${YEAR}; samesite=lax${secure}`;
    load(target);
  });
}
load(target);
