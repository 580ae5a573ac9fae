// Shared helpers of the pages: the page's data, translated messages, locale-aware
// formatting and JSON calls that keep the API's {error, message, fields} shape.
// Text only ever goes into the page with textContent, never parsed as markup.

const readJSON = (id) => {
  const node = document.getElementById(id);
  return node ? JSON.parse(node.textContent || '{}') : {};
};

export const page = readJSON('page-data');
const messages = readJSON('messages');
export const locale = page.locale || document.documentElement.lang || 'en';

// The page's language with the browser's region when they agree (en-GB dates for a
// British browser), else the bare language.
export const intlLocale =
  (navigator.languages || []).find((tag) => tag.toLowerCase().split('-')[0] === locale) || locale;

export const $ = (id) => document.getElementById(id);

const pluralRules = new Intl.PluralRules(locale);

/** A translated message with `{name}` placeholders filled in. A message with a count
 * comes as one text per plural category (web/pages.py, JS_PLURALS): the one for `n` is
 * used, and `n` is written as the page's language writes numbers. */
export function t(key, vars = {}) {
  let text = Object.prototype.hasOwnProperty.call(messages, key) ? messages[key] : key;
  if (typeof text === 'object') {
    const n = Number(vars.n);
    text = text[pluralRules.select(n)] ?? text.other;
    if (Number.isFinite(n)) vars = { ...vars, n: formatter('number', intlLocale, {}).format(n) };
  }
  return text.replace(/\{(\w+)\}/g, (whole, name) => (name in vars ? String(vars[name]) : whole));
}

/** An element with attributes and text (never markup). */
export function el(tag, attrs = {}, text) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === 'class') node.className = value;
    else node.setAttribute(name, value === true ? '' : String(value));
  }
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

// Building an Intl formatter costs far more than using one, and chat in a crowded show
// formats a time per message: each formatter is built once per page.
const formats = new Map();
function formatter(kind, locale, options) {
  const key = `${kind}|${locale}|${JSON.stringify(options)}`;
  let format = formats.get(key);
  if (!format) {
    format = kind === 'number' ? new Intl.NumberFormat(locale, options) : new Intl.DateTimeFormat(locale, options);
    formats.set(key, format);
  }
  return format;
}

/** The currency's own fraction digits (USD 2, KRW 0, KWD 3). */
function fractionDigits(currency) {
  return formatter('number', 'en', { style: 'currency', currency }).resolvedOptions().maximumFractionDigits;
}

/** Integer minor units → the amount in the currency, formatted for the page's locale. */
export function formatMoney(minor, currency) {
  const format = formatter('number', intlLocale, { style: 'currency', currency });
  return format.format(minor / 10 ** format.resolvedOptions().maximumFractionDigits);
}

/** An amount typed in the currency's units (`12.5` USD) → integer minor units (1250);
 * what cannot be read is passed on as typed, for the API to name the field. */
export function toMinor(amount, currency) {
  const text = String(amount).trim().replace(/,/g, '');
  const value = Number(text);
  if (!text || !Number.isFinite(value)) return text;
  return Math.round(value * 10 ** fractionDigits(currency));
}

const timeStyles = {
  datetime: { dateStyle: 'medium', timeStyle: 'short' },
  date: { dateStyle: 'medium' },
  time: { timeStyle: 'short' },
};

// dateStyle cannot be combined with timeZoneName: the tooltip spells the fields out.
const zoneStyle = { year: 'numeric', month: 'short', day: 'numeric', hour: 'numeric', minute: '2-digit', timeZoneName: 'long' };

/** Rewrites every <time datetime="…UTC…"> in the viewer's own time zone. */
export function formatTimes(root = document) {
  for (const node of root.querySelectorAll('time[datetime]')) {
    const when = new Date(node.getAttribute('datetime'));
    if (Number.isNaN(when.getTime())) continue;
    const style = timeStyles[node.dataset.format] || timeStyles.datetime;
    node.textContent = formatter('date', intlLocale, style).format(when);
    node.title = formatter('date', intlLocale, zoneStyle).format(when);
  }
}

export function formatTime(iso) {
  const when = new Date(iso);
  return Number.isNaN(when.getTime()) ? '' : formatter('date', intlLocale, timeStyles.time).format(when);
}

/** A chat message as a list item: its time in the viewer's zone, author and text (set
 * as text, never as HTML). Pages add their own extras (moderation, a private chip). */
export function chatItem(message) {
  const item = el('li', { class: `msg role-${message.user.role}`, 'data-id': Number(message.id) });
  if (message.at) item.append(el('time', { datetime: message.at }, formatTime(message.at)), ' ');
  item.append(el('span', { class: 'author' }, message.user.name), ' ', el('span', { class: 'text' }, message.text));
  return item;
}

/** Appends a chat item, keeping the newest `max`; a reader scrolled up to older
 * messages is not pulled down, one at the bottom stays there. */
export function appendChat(list, item, max = 300) {
  const atBottom = list.scrollTop + list.clientHeight >= list.scrollHeight - 8;
  list.append(item);
  while (list.children.length > max) list.firstElementChild.remove();
  if (atBottom) list.scrollTop = list.scrollHeight;
}

/** A JSON call. Never throws: {ok, status, data}; status 0 is a network failure. */
export async function api(method, url, body, headers = {}) {
  const init = { method, headers: { Accept: 'application/json', ...headers }, credentials: 'same-origin' };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(url, init);
  } catch {
    return { ok: false, status: 0, data: { error: 'network', message: t('network_error') } };
  }
  let data = {};
  try {
    data = await response.json();
  } catch {
    data = {};
  }
  return { ok: response.ok, status: response.status, data: data || {} };
}

/** A fresh key for one purchase attempt (crypto.randomUUID needs a secure context). */
export function newKey() {
  if (window.crypto && typeof crypto.randomUUID === 'function' && window.isSecureContext) return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

// Localised wording for fields the API names; the API's own (English) message is kept
// in the title so nothing it said is lost.
const fieldHints = {
  email: 'invalid_email',
  password: 'invalid_password',
  name: 'invalid_name',
  country: 'invalid_country',
  destination_country: 'invalid_country',
  quantity: 'invalid_quantity',
  unit_price: 'invalid_price',
  valid_days: 'invalid_days',
};

// An error code that says more than the field's hint; a null field: the field the API named.
const codeMessages = {
  email_taken: ['email', 'email_taken'],
  weak_password: [null, 'weak_password'],
  name_characters: ['name', 'name_characters'],
};

/** A one-line outcome in a form's message slot (`.field-error`, `.form-error`) or a
 * status line: a success is styled as one (`is-ok`, green with a tick) and announced
 * politely (role=status), a failure keeps the error style and interrupts (role=alert). */
export function say(slot, text, ok) {
  slot.setAttribute('role', ok ? 'status' : 'alert');
  slot.classList.toggle('is-ok', Boolean(ok));
  slot.textContent = text;
  slot.hidden = false;
}

export function clearErrors(form) {
  for (const node of form.querySelectorAll('.field-error, .form-error')) node.classList.remove('is-ok');
  for (const node of form.querySelectorAll('.field-error')) node.textContent = '';
  for (const node of form.querySelectorAll('[aria-invalid]')) node.removeAttribute('aria-invalid');
  const general = form.querySelector('.form-error');
  if (general) {
    general.textContent = '';
    general.hidden = true;
  }
}

/** Shows an API error in a form: each of `fields` (or `field`) next to its input,
 * the rest at the top. Returns true when something was shown. */
export function showErrors(form, data, fallback) {
  clearErrors(form);
  const items = Array.isArray(data.fields) ? [...data.fields] : [];
  if (data.field) items.push({ field: data.field, message: data.message });
  if (codeMessages[data.error]) {
    const [field, key] = codeMessages[data.error];
    items.push({ field: field || data.field, message: data.message, text: t(key) });
  }
  let placed = false;
  for (const item of items) {
    // The slot for the API's whole field path (`segments.1.title`) if the form has one,
    // else for its first part (`destination_country`, `segments`).
    const path = String(item.field || '');
    const name = path.split('.')[0];
    const slot =
      form.querySelector(`.field-error[data-for="${CSS.escape(path)}"]`) ||
      form.querySelector(`.field-error[data-for="${CSS.escape(name)}"]`);
    if (!slot) continue;
    const last = path.split('.').pop();
    const hint = [last, name].map((key) => (Object.hasOwn(fieldHints, key) ? fieldHints[key] : null)).find(Boolean);
    slot.textContent = item.text || (hint ? t(hint) : item.message || t('field_invalid'));
    slot.title = item.message || '';
    const label = slot.closest('label');
    const input =
      (label && label.querySelector('input, select, textarea')) || form.querySelector(`[name="${CSS.escape(name)}"]`);
    if (input) input.setAttribute('aria-invalid', 'true');
    placed = true;
  }
  if (!placed) {
    const general = form.querySelector('.form-error');
    const text = fallback || data.message || t('try_again');
    if (general) {
      general.textContent = text;
      general.hidden = false;
    } else {
      const slot = form.querySelector('.field-error');
      if (slot) slot.textContent = text;
    }
  }
  return true;
}

/** The wording for a refused Socket.IO ack ({ok: false, error, message, retry_after}). */
export function ackError(reply) {
  const n = reply.retry_after ?? '';
  switch (reply.error) {
    case 'muted': return t('muted', { n });
    case 'slow_mode': return t('slow_mode', { n });
    case 'rate_limited': return t('rate_limited', { n });
    case 'unauthorized': return t('sign_in_to_chat');
    case 'forbidden': return t('forbidden');
    case 'timeout': return t('network_error');
    default: return reply.message || t('try_again');
  }
}

/** The show's current segment from GET /api/shows/{id} (going live picks the first one
 * without a `segment` event), shaped like the `segment` event; null if none. */
export async function currentSegment(showId) {
  const reply = await api('GET', `/api/shows/${encodeURIComponent(showId)}`);
  if (!reply.ok) return null;
  const segment = (reply.data.segments || []).find((s) => s.id === reply.data.current_segment_id);
  return segment ? { id: segment.id, title: segment.title, committee: segment.committee } : null;
}
