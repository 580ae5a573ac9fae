// In-stream vouchers on the show's socket (issue 17, item 3): the studio makes a voucher
// for its show (POST /api/vouchers), pins and unpins it (`voucher_pin`, `voucher_unpin`);
// the watch page shows the pinned voucher's card and claims it with one tap
// (`voucher_claim`), to be applied at checkout. Text comes from #vouchers-text
// (web/templates/_vouchers.html) and goes in with textContent only.
import { $, ackError, api, el, formatMoney, page, showErrors, clearErrors, toMinor } from './page.js';

const node = document.getElementById('vouchers-text');
const text = node ? JSON.parse(node.textContent || '{}') : {};
const say = (key, vars = {}) =>
  (text[key] || key).replace(/\{(\w+)\}/g, (whole, name) => (name in vars ? String(vars[name]) : whole));

let pinned = null;
let me = null;

/** Basis points as the page's locale writes a percentage (1000 → "10%", "10 %"). */
export function percent(bp) {
  return new Intl.NumberFormat(page.locale || undefined, { style: 'percent', maximumFractionDigits: 2 }).format(bp / 10000);
}

export function title(voucher) {
  return voucher.kind === 'percent'
    ? say('percent_off', { percent: percent(voucher.percent_bp) })
    : say('amount_off', { amount: formatMoney(voucher.amount, voucher.currency) });
}

function showCard(voucher) {
  pinned = voucher;
  const card = $('voucher-card');
  if (!card) return;
  card.hidden = !voucher;
  if (!voucher) return;
  $('voucher-title').textContent = title(voucher);
  $('voucher-min').textContent = voucher.min_spend > 0
    ? say('min_spend', { amount: formatMoney(voucher.min_spend, voucher.currency) }) : '';
  $('voucher-left').textContent = say('left', { left: voucher.left, total: voucher.total_limit });
  $('voucher-claim').hidden = Boolean($('vouchers-studio'));
  $('voucher-status').textContent = '';
  if ($('voucher-unpin')) $('voucher-unpin').hidden = false;
}

function wireViewer(rt) {
  $('voucher-claim')?.addEventListener('click', async () => {
    if (!pinned) return;
    if (!me) {
      $('voucher-status').textContent = say('sign_in');
      return;
    }
    const reply = await rt.request('voucher_claim', { voucher_id: pinned.id });
    $('voucher-status').textContent = reply.ok ? say('claimed') : ackError(reply);
    if (reply.ok) $('voucher-claim').disabled = true;
  });
}

async function listVouchers(rt) {
  const list = $('voucher-list');
  const reply = await api('GET', `/api/vouchers?show_id=${encodeURIComponent(page.show_id)}`);
  if (!reply.ok) return;
  list.replaceChildren(...reply.data.map((voucher) => {
    const pin = el('button', { type: 'button', class: 'secondary' }, say('pin'));
    pin.addEventListener('click', async () => {
      const answer = await rt.request('voucher_pin', { voucher_id: voucher.id });
      $('voucher-make-status').textContent = answer.ok ? say('pinned') : ackError(answer);
    });
    const item = el('li', {}, `${voucher.code} · ${title(voucher)} · ${say('left', { left: voucher.left, total: voucher.total_limit })} `);
    item.append(pin);
    return item;
  }));
}

function wireStudio(rt) {
  const form = $('voucher-make');
  if (!form) return;
  listVouchers(rt);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(form);
    const currency = form.elements.currency.value.trim().toUpperCase();
    const kind = form.elements.kind.value;
    const value = form.elements.value.value;
    const now = Date.now();
    const body = {
      kind, currency, show_id: page.show_id,
      min_spend: toMinor(form.elements.min_spend.value || '0', currency),
      total_limit: Number(form.elements.total_limit.value),
      per_buyer_limit: Number(form.elements.per_buyer_limit.value),
      starts_at: new Date(now - 60_000).toISOString(),
      ends_at: new Date(now + Number(form.elements.minutes.value) * 60_000).toISOString(),
    };
    if (kind === 'percent') body.percent_bp = Math.round(Number(value) * 100);
    else body.amount = toMinor(value, currency);
    const reply = await api('POST', '/api/vouchers', body);
    if (!reply.ok) {
      showErrors(form, reply.data);
      return;
    }
    $('voucher-make-status').textContent = say('made', { code: reply.data.code });
    listVouchers(rt);
  });
  $('voucher-unpin')?.addEventListener('click', async () => {
    const reply = await rt.request('voucher_unpin', {});
    if (reply.ok) showCard(null);
  });
}

export function initVouchers(rt) {
  if (!$('voucher-card')) return;
  me = page.user || null;
  const catchUp = async () => {
    const reply = await rt.request('voucher_state', {});
    if (reply.ok) showCard(reply.voucher);
  };
  rt.on('state', (state) => {
    me = state.me || null;
    catchUp();
  });
  if (rt.socket.connected) catchUp(); // this module may load after the first state
  rt.on('voucher_pin', (data) => showCard(data.voucher));
  rt.on('voucher_unpin', () => showCard(null));
  wireViewer(rt);
  wireStudio(rt);
}

// --- My orders: the member's points (issue 17, item 5) ------------------------------

async function showMileage() {
  const words = JSON.parse($('mileage-text').textContent || '{}');
  const fill = (key, vars) => (words[key] || key).replace(/\{(\w+)\}/g, (whole, name) => (name in vars ? String(vars[name]) : whole));
  const reply = await api('GET', '/api/me/mileage');
  if (!reply.ok) return;
  const { balance, currency, next_expiry: soon, entries } = reply.data;
  $('mileage-balance').textContent = fill('balance', { points: balance, unit: formatMoney(1, currency) });
  $('mileage-expiring').textContent = soon
    ? fill('expiring', { points: soon.points, date: new Date(soon.at).toLocaleDateString(page.locale || undefined) }) : '';
  $('mileage-history').replaceChildren(...entries.map((entry) => {
    const row = el('tr', { 'data-kind': entry.kind });
    row.append(
      el('td', {}, new Date(entry.at).toLocaleDateString(page.locale || undefined)),
      el('td', {}, words[entry.kind] || entry.kind),
      el('td', { class: 'money' }, entry.points > 0 ? `+${entry.points}` : String(entry.points)),
      el('td', {}, entry.order_id ? fill('order', { id: entry.order_id }) : ''),
    );
    return row;
  }));
}

if ($('mileage') && $('mileage-text')) showMileage();
