// Admin page: scheduling a show with its segments and line-ups (POST /api/shows),
// adding a segment to a show (POST /api/shows/{id}/segments), changing a user's role
// (PATCH /api/admin/users/{id}), moving an order on (POST /api/orders/{id}/…) and
// answering a quote request (POST /api/quotes/{id}/answer).
// The API is the one validator: its field errors are shown next to each field.
import { $, api, clearErrors, el, formatMoney, say, showErrors, t, toMinor } from './page.js';

// --- segments: one fieldset each, copied from <template id="segment-template"> -----

function addSegment(list) {
  const fields = $('segment-template').content.firstElementChild.cloneNode(true);
  list.append(fields);
  numberSegments(list);
  fields.querySelector('.remove-segment').addEventListener('click', () => {
    fields.remove();
    numberSegments(list);
  });
  return fields;
}

// Each segment's error slots are named after the API's field path
// (`segments.1.title`), so a field error lands in the segment it belongs to.
function numberSegments(list) {
  const nested = list.closest('form').id === 'show-form';
  Array.from(list.children).forEach((fields, index) => {
    fields.querySelector('.segment-number').textContent = String(index + 1);
    fields.dataset.index = String(index);
    for (const slot of fields.querySelectorAll('.field-error')) {
      const name = slot.dataset.name || slot.dataset.for;
      slot.dataset.name = name;
      slot.dataset.for = nested ? `segments.${index}.${name}` : name;
    }
    fields.querySelector('.remove-segment').hidden = !nested;
  });
}

function segmentBody(fields) {
  return {
    title: fields.querySelector('[name="segment_title"]').value,
    committee: fields.querySelector('[name="committee"]').value,
    product_ids: Array.from(fields.querySelector('[name="product_ids"]').selectedOptions, (o) => Number(o.value)),
  };
}

// Choosing a segment's committee brings its products to the top of the line-up list
// (the admin may still pick others); the line-up keeps the list's order.
function committeeFirst(fields) {
  const committee = fields.querySelector('[name="committee"]');
  committee.addEventListener('change', () => {
    const products = fields.querySelector('[name="product_ids"]');
    if (products.selectedOptions.length) return;
    // This committee's products first in the list, in catalogue order.
    products.prepend(...Array.from(products.options).filter((o) => o.dataset.committee === committee.value));
    products.scrollTop = 0;
  });
}

function asInstant(local) {
  // datetime-local is the admin's wall clock: send it as an instant in UTC.
  const when = local ? new Date(local) : null;
  return when && !Number.isNaN(when.getTime()) ? when.toISOString() : local;
}

const showForm = $('show-form');
if (showForm) {
  const list = showForm.querySelector('.segment-list');
  committeeFirst(addSegment(list));
  showForm.querySelector('.add-segment').addEventListener('click', () => {
    const fields = addSegment(list);
    committeeFirst(fields);
    fields.querySelector('[name="segment_title"]').focus();
  });
  showForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(showForm);
    const exhibition = showForm.exhibition_id.value;
    const body = {
      title: showForm.title.value,
      scheduled_at: asInstant(showForm.scheduled_at.value),
      host_id: Number(showForm.host_id.value),
      exhibition_id: exhibition ? Number(exhibition) : null,
      segments: Array.from(list.children, segmentBody),
    };
    const reply = await api('POST', '/api/shows', body);
    const done = $('show-created');
    done.replaceChildren();
    if (!reply.ok) {
      showErrors(showForm, reply.data);
      return;
    }
    done.append(el('a', { href: `/shows/${reply.data.id}` }, `#${reply.data.id} ${reply.data.title}`));
    showForm.reset();
    list.replaceChildren();
    committeeFirst(addSegment(list));
  });
}

const segmentForm = $('segment-form');
if (segmentForm) {
  const list = segmentForm.querySelector('.segment-list');
  const fields = addSegment(list);
  committeeFirst(fields);
  segmentForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(segmentForm);
    const showId = segmentForm.show_id.value;
    if (!showId) return;
    const reply = await api('POST', `/api/shows/${encodeURIComponent(showId)}/segments`, segmentBody(fields));
    const done = $('segment-added');
    done.textContent = '';
    if (!reply.ok) {
      showErrors(segmentForm, reply.data);
      return;
    }
    done.textContent = t('segment_added', { title: reply.data.title, n: reply.data.position });
    const row = document.querySelector(`#shows tr[data-show-id="${Number(showId)}"] .segment-titles`);
    if (row) row.append(row.childElementCount ? '; ' : '', el('span', {}, reply.data.title));
    fields.querySelector('[name="segment_title"]').value = '';
    for (const option of fields.querySelector('[name="product_ids"]').options) option.selected = false;
  });
}

// --- users and roles ------------------------------------------------------------------

for (const form of document.querySelectorAll('.role-form')) {
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(form);
    const button = form.querySelector('button[type="submit"]');
    button.disabled = true;
    const reply = await api('PATCH', `/api/admin/users/${encodeURIComponent(form.dataset.userId)}`, { role: form.role.value });
    button.disabled = false;
    if (reply.ok) say(form.querySelector('.field-error'), t('saved'), true);
    else showErrors(form, reply.data);
  });
}

// --- orders: confirm payment, ship, deliver, refund --------------------------------------

for (const button of document.querySelectorAll('.order-move')) {
  button.addEventListener('click', async () => {
    const row = button.closest('tr');
    const slot = row.querySelector('.order-error');
    slot.textContent = '';
    for (const other of row.querySelectorAll('.order-move')) other.disabled = true;
    const reply = await api('POST', `/api/orders/${encodeURIComponent(row.dataset.orderId)}/${button.dataset.move}`);
    if (reply.ok) {
      row.querySelector('.order-state').textContent = t(`status_${reply.data.status}`);
      row.dataset.status = reply.data.status;
      for (const other of row.querySelectorAll('.order-move')) other.hidden = !other.dataset.from.split(' ').includes(reply.data.status);
    } else {
      slot.textContent = reply.data.message || t('try_again');
    }
    for (const other of row.querySelectorAll('.order-move')) other.disabled = false;
  });
}

// --- quotes: the offer (a unit price in the product's currency, valid for some days) ---

for (const form of document.querySelectorAll('.quote-answer-form')) {
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(form);
    const days = form.valid_days.value.trim();
    const body = {
      unit_price: toMinor(form.unit_price.value, form.dataset.currency),
      valid_days: /^\d+$/.test(days) ? Number(days) : days,
    };
    const reply = await api('POST', `/api/quotes/${encodeURIComponent(form.dataset.quoteId)}/answer`, body);
    if (!reply.ok) {
      showErrors(form, reply.data);
      return;
    }
    const row = form.closest('tr');
    row.querySelector('.quote-state').textContent = t(`quote_status_${reply.data.status}`);
    const price = row.querySelector('.quote-price') || el('span', { class: 'quote-price' });
    price.textContent = formatMoney(reply.data.unit_price, reply.data.currency);
    form.before(price);
  });
}

// --- the catalog: suppliers, products (price and stock), packages, exhibitions ---------
// Money is typed in the currency's units and sent in minor units (toMinor); times are
// the admin's wall clock sent as UTC (asInstant). A form that adds something reloads
// the page, so the new supplier, product or exhibition is in every list and choice.

const FLASH = 'livemall.admin.flash';

function flashAfterReload(text) {
  try {
    sessionStorage.setItem(FLASH, text);
  } catch {
    // private mode: the reloaded page simply shows the new row
  }
  window.location.reload();
}

function showFlash() {
  let text = null;
  try {
    text = sessionStorage.getItem(FLASH);
    sessionStorage.removeItem(FLASH);
  } catch {
    return;
  }
  const slot = $('admin-flash');
  if (text && slot) {
    slot.textContent = text;
    slot.hidden = false;
  }
}
showFlash();

/** Minor units of an amount typed in `currency`; what cannot be read goes as typed. */
function minor(text, currency) {
  if (!String(text).trim()) return String(text).trim();
  try {
    return toMinor(text, currency);
  } catch {
    return String(text).trim(); // not a currency Intl knows: the API names the fields
  }
}

/** A whole number typed in a box; anything else is sent as typed for the API to refuse. */
function whole(text) {
  const trimmed = String(text).trim();
  return /^-?\d{1,10}$/.test(trimmed) ? Number(trimmed) : trimmed;
}

// The wording of the catalog's field errors in the page's language (the API's own
// message stays in the slot's title).
const catalogHints = {
  price: 'invalid_price',
  currency: 'invalid_currency',
  stock: 'invalid_stock',
  restock: 'invalid_units',
  moq: 'invalid_moq',
  quantity: 'invalid_moq',
  image_url: 'invalid_image_url',
};

function hinted(data) {
  const items = Array.isArray(data.fields) ? [...data.fields] : [];
  if (data.field) items.push({ field: data.field, message: data.message, domain: true });
  const fields = items.map((item) => {
    const last = String(item.field || '').split('.').pop();
    if (data.error === 'not_enough_stock' && last === 'restock') return { ...item, text: t('not_enough_stock', { n: data.stock }) };
    if (item.domain && last === 'ends_at') return { ...item, text: t('invalid_period') };
    if (last === 'currency' && String(item.field).includes('.')) return item; // a line's currency: the API's words
    return Object.hasOwn(catalogHints, last) ? { ...item, text: t(catalogHints[last]) } : item;
  });
  return { error: data.error, message: data.message, fields };
}

// Rows of a list (a package's components, an exhibition's products), copied from a
// <template>; their error slots are named after the API's path (`items.1.quantity`).
function numberLines(list) {
  Array.from(list.children).forEach((fields, index) => {
    for (const slot of fields.querySelectorAll('.field-error')) {
      const name = slot.dataset.name || slot.dataset.for;
      slot.dataset.name = name;
      slot.dataset.for = `${list.dataset.path}.${index}.${name}`;
    }
  });
}

function addLine(list, templateId) {
  const fields = $(templateId).content.firstElementChild.cloneNode(true);
  list.append(fields);
  numberLines(list);
  fields.querySelector('.remove-line').addEventListener('click', () => {
    fields.remove();
    numberLines(list);
  });
  return fields;
}

function catalogForm(id, { path, body, added, template, onLine }) {
  const form = $(id);
  if (!form) return;
  const list = form.querySelector('.line-list');
  if (list) {
    const add = () => {
      const fields = addLine(list, template);
      if (onLine) onLine(fields);
      return fields;
    };
    add();
    form.querySelector('.add-line').addEventListener('click', () => add().querySelector('select').focus());
  }
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(form);
    const button = form.querySelector('button[type="submit"]');
    button.disabled = true;
    const reply = await api('POST', path, body(form, list));
    button.disabled = false;
    if (!reply.ok) {
      showErrors(form, hinted(reply.data));
      return;
    }
    flashAfterReload(t('catalog_added', { name: added(reply.data) }));
  });
}

catalogForm('supplier-form', {
  path: '/api/admin/suppliers',
  body: (form) => ({ name: form.elements.name.value, region: form.region.value }),
  added: (supplier) => supplier.name,
});

catalogForm('product-form', {
  path: '/api/admin/products',
  body: (form) => {
    const currency = form.currency.value.trim().toUpperCase();
    const image = form.image_url.value.trim();
    return {
      supplier_id: Number(form.supplier_id.value),
      committee: form.committee.value,
      name: form.elements.name.value,
      description: form.description.value,
      price: minor(form.price.value, currency),
      currency,
      stock: whole(form.stock.value),
      kind: form.kind.value,
      moq: whole(form.moq.value),
      image_url: image || null,
    };
  },
  added: (product) => `#${product.id} ${product.name}`,
});

catalogForm('package-form', {
  path: '/api/admin/packages',
  template: 'component-template',
  body: (form, list) => ({
    package_id: Number(form.package_id.value),
    items: Array.from(list.children, (line) => ({
      product_id: Number(line.querySelector('[name="product_id"]').value),
      quantity: whole(line.querySelector('[name="quantity"]').value),
    })),
  }),
  added: (product) => `#${product.id} ${product.name}`,
});

function lineCurrency(line) {
  const select = line.querySelector('[name="product_id"]');
  const option = select.selectedOptions[0];
  return option ? option.dataset.currency : '';
}

catalogForm('exhibition-form', {
  path: '/api/admin/exhibitions',
  template: 'exhibition-line-template',
  onLine: (line) => {
    const label = line.querySelector('.line-currency');
    const show = () => { label.textContent = lineCurrency(line); };
    line.querySelector('[name="product_id"]').addEventListener('change', show);
    show();
  },
  body: (form, list) => ({
    title: form.title.value,
    partner: form.partner.value,
    starts_at: asInstant(form.starts_at.value),
    ends_at: asInstant(form.ends_at.value),
    // A line with no price typed is left out: the admin added a row and did not use it.
    products: Array.from(list.children)
      .filter((line) => line.querySelector('[name="price"]').value.trim())
      .map((line) => {
        const currency = lineCurrency(line);
        return {
          product_id: Number(line.querySelector('[name="product_id"]').value),
          price: minor(line.querySelector('[name="price"]').value, currency),
          currency,
        };
      }),
  }),
  added: (exhibition) => exhibition.title,
});

// A product's row: a new price (blank keeps it) and units received (blank adds none).
for (const form of document.querySelectorAll('.product-change-form')) {
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(form);
    const status = form.querySelector('.change-status');
    status.textContent = '';
    const body = {};
    if (form.price.value.trim()) body.price = minor(form.price.value, form.dataset.currency);
    if (form.restock.value.trim()) body.restock = whole(form.restock.value);
    if (!Object.keys(body).length) return;
    const button = form.querySelector('button[type="submit"]');
    button.disabled = true;
    const reply = await api('PATCH', `/api/admin/products/${encodeURIComponent(form.dataset.productId)}`, body);
    button.disabled = false;
    const row = form.closest('tr');
    if (!reply.ok) {
      showErrors(form, hinted(reply.data));
      if (reply.data.stock !== undefined) row.querySelector('.product-stock').textContent = String(reply.data.stock);
      return;
    }
    row.querySelector('.product-price').textContent = formatMoney(reply.data.price, reply.data.currency);
    row.querySelector('.product-stock').textContent = String(reply.data.stock);
    form.price.value = '';
    form.restock.value = '';
    status.textContent = t('saved');
  });
}
