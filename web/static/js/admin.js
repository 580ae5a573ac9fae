// Admin page: scheduling a show with its segments and line-ups (POST /api/shows),
// adding a segment to a show (POST /api/shows/{id}/segments), changing a user's role
// (PATCH /api/admin/users/{id}), moving an order on (POST /api/orders/{id}/…) and
// answering a quote request (POST /api/quotes/{id}/answer).
// The API is the one validator: its field errors are shown next to each field.
import { $, api, clearErrors, el, formatMoney, showErrors, t, toMinor } from './page.js';

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
    if (reply.ok) form.querySelector('.field-error').textContent = t('saved');
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
    row.querySelector('.quote-state').textContent = reply.data.status;
    const price = row.querySelector('.quote-price') || el('span', { class: 'quote-price' });
    price.textContent = formatMoney(reply.data.unit_price, reply.data.currency);
    form.before(price);
  });
}
