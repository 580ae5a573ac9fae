// The checkout page: the hold's countdown, picking or adding a ship-to address (which
// prices shipping and duties on the server), the totals, and paying with the existing
// pay API. Text goes into the page with textContent only.

import { $, api, clearErrors, el, formatMoney, page, showErrors, t } from './page.js';
import { showApprox } from './prices.js';

const text = JSON.parse($('checkout-text').textContent || '{}');
const orderId = page.order_id;
let summary = page.checkout;
let addresses = page.addresses || [];
let timer = null;

function money(minor) {
  return formatMoney(minor, summary.currency);
}

function countdown() {
  const left = Math.max(0, Math.floor((Date.parse(summary.expires_at) - Date.now()) / 1000));
  if (summary.status !== 'pending') {
    $('hold-label').textContent = text.not_pending;
    $('countdown').textContent = '';
  } else if (left === 0) {
    $('hold-label').textContent = text.expired;
    $('countdown').textContent = '';
  } else {
    $('hold-label').textContent = text.held;
    const minutes = Math.floor(left / 60);
    const seconds = String(left % 60).padStart(2, '0');
    $('countdown').textContent = `${minutes}:${seconds}`;
  }
  setPayable(left > 0);
  if (left === 0 && timer !== null) {
    clearInterval(timer);
    timer = null;
  }
}

function setPayable(held) {
  $('pay-button').disabled = !(held && summary.payable);
  $('ship-here').disabled = !held || summary.status !== 'pending';
}

function renderAddresses() {
  const list = $('address-list');
  list.replaceChildren();
  if (addresses.length === 0) list.append(el('p', { class: 'meta' }, text.pick_address));
  const chosen = summary.ship_to;
  for (const address of addresses) {
    const input = el('input', { type: 'radio', name: 'address_id', value: address.id });
    if (chosen && address.country === chosen.country && address.line1 === chosen.line1 && address.name === chosen.name) {
      input.checked = true;
    }
    const parts = [address.name, address.line1, address.line2, address.city, address.region, address.postal_code,
      address.country_name];
    const label = el('label', { class: 'address', 'data-testid': 'address' });
    // The radio in a span: `.stack label > input` would stretch it to the form's width.
    label.append(el('span'), ' ', parts.filter(Boolean).join(', '));
    label.firstChild.append(input);
    list.append(label);
  }
  $('ship-here').hidden = addresses.length === 0;
}

function renderTotals() {
  for (const cell of document.querySelectorAll('td.money[data-minor]')) {
    cell.textContent = formatMoney(Number(cell.dataset.minor), cell.dataset.currency);
  }
  $('items-total').textContent = money(summary.items_total);
  $('shipping').textContent = summary.shipping === null ? text.no_shipping : money(summary.shipping);
  $('duties-row').hidden = summary.duties === null;
  if (summary.duties !== null) $('duties').textContent = money(summary.duties);
  $('duties-note').textContent = summary.ship_to ? summary.duties_note : '';
  $('total').textContent = money(summary.total);
  // Paid in the order's (the product's) currency; the buyer's own beside it, for reading.
  showApprox($('total-approx'), summary.total, summary.currency);
  $('pay-in').textContent = t('pay_in', { currency: summary.currency });
  const select = $('provider');
  if (select.options.length === 0) {
    for (const name of summary.payment_providers) select.append(el('option', { value: name }, name));
    if (summary.payment_provider) select.value = summary.payment_provider;
  }
}

function render() {
  renderAddresses();
  renderTotals();
  renderDiscounts(); // coupons and points (issue 17)
  countdown();
}

async function checkOut(addressId, form) {
  const reply = await api('POST', `/api/orders/${orderId}/checkout`, { address_id: addressId });
  if (!reply.ok) {
    showErrors(form, reply.data);
    return false;
  }
  summary = reply.data;
  render();
  return true;
}

$('address-pick').addEventListener('submit', async (event) => {
  event.preventDefault();
  const form = event.currentTarget;
  clearErrors(form);
  const picked = form.querySelector('input[name="address_id"]:checked');
  if (!picked) {
    showErrors(form, { field: 'address_id', message: text.pick_address });
    return;
  }
  await checkOut(Number(picked.value), form);
});

$('address-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const form = event.currentTarget;
  clearErrors(form);
  const body = {};
  for (const name of ['name', 'line1', 'line2', 'city', 'region', 'postal_code', 'country', 'phone']) {
    const value = form.elements[name].value.trim();
    if (value !== '' || ['name', 'line1', 'city', 'country', 'phone'].includes(name)) body[name] = value;
  }
  const reply = await api('POST', '/api/addresses', body);
  if (!reply.ok) {
    showErrors(form, reply.data);
    return;
  }
  addresses = [...addresses, reply.data];
  renderAddresses();
  if (await checkOut(reply.data.id, form)) {
    form.reset();
    $('address-add').open = false;
  }
});

$('pay-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const form = event.currentTarget;
  clearErrors(form);
  $('pay-button').disabled = true;
  const box = $('payment');
  box.hidden = false;
  box.textContent = text.paying;
  const reply = await api('POST', `/api/orders/${orderId}/pay`, { provider: $('provider').value });
  if (!reply.ok) {
    box.hidden = true;
    showErrors(form, reply.data);
    setPayable(true);
    return;
  }
  summary = { ...summary, payment_provider: reply.data.provider };
  const page = reply.data.redirect_url ? new URL(reply.data.redirect_url, window.location.href) : null;
  if (page && (page.protocol === 'https:' || page.protocol === 'http:')) {
    // A card processor's own page (Stripe Checkout): the buyer pays there and comes
    // back to the order page, which waits for the signed webhook.
    box.textContent = text.paying;
    window.location.assign(page.href);
    return;
  }
  box.replaceChildren(
    el('p', {}, `${text.pay_ref}: ${reply.data.payment_ref}`),
    el('p', {}, reply.data.instructions || ''),
  );
  setPayable(true);
});

// --- coupons and points (issue 17, items 3 and 5) -------------------------------------

function renderDiscounts() {
  const lines = summary.discounts || { coupon: null, points: null };
  $('coupon-row').hidden = !lines.coupon;
  if (lines.coupon) {
    $('coupon-discount').textContent = text.coupon_line
      .replace('{code}', lines.coupon.code).replace('{amount}', money(lines.coupon.amount));
  }
  $('points-row').hidden = !lines.points;
  if (lines.points) $('points-discount').textContent = `−${money(lines.points)}`;
  $('coupon-form').hidden = Boolean(lines.coupon) || summary.status !== 'pending';
  $('points-form').hidden = Boolean(lines.points) || summary.status !== 'pending';
}

async function loadWallet() {
  const [vouchers, mileage] = await Promise.all([api('GET', '/api/me/vouchers'), api('GET', '/api/me/mileage')]);
  if (vouchers.ok) {
    for (const voucher of vouchers.data.filter((v) => v.currency === summary.currency)) {
      const off = voucher.kind === 'percent'
        ? new Intl.NumberFormat(page.locale || undefined, { style: 'percent' }).format(voucher.percent_bp / 10000)
        : money(voucher.amount);
      $('coupon-wallet').append(el('option', { value: voucher.id }, `${voucher.code} (−${off})`));
    }
  }
  if (mileage.ok) {
    $('points-balance').textContent = text.points_balance
      .replace('{points}', String(mileage.data.balance)).replace('{unit}', formatMoney(1, mileage.data.currency));
  }
}

async function applyDiscount(form, url, body) {
  clearErrors(form);
  const reply = await api('POST', url, body);
  if (!reply.ok) {
    showErrors(form, reply.data);
    return;
  }
  summary = reply.data;
  render();
}

$('coupon-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const form = event.currentTarget;
  const picked = form.elements.voucher_id.value;
  const body = picked ? { voucher_id: Number(picked) } : { code: form.elements.code.value.trim() };
  applyDiscount(form, `/api/orders/${orderId}/coupon`, body);
});

$('points-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const form = event.currentTarget;
  applyDiscount(form, `/api/orders/${orderId}/points`, { points: Number(form.elements.points.value) });
});

loadWallet();

render();
timer = setInterval(countdown, 1000);
