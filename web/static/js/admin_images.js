// The admin page's product images: pick a product, see its pictures (the small size),
// upload one (multipart POST /api/admin/products/{id}/images), move one earlier or later
// (PUT …/images/order) and delete one. The server decodes and resizes; its refusals
// (not a JPEG/PNG/WebP, too large, too many pixels) land beside the file input. The
// wording comes from the block's data-* attributes, rendered translated by admin.html.
// Text goes in with textContent only.

import { $, api, clearErrors, el, showErrors, t } from './page.js';

const form = $('image-form');
const list = $('image-list');

if (form && list) {
  const words = list.dataset;
  const product = form.elements.product_id;
  const status = form.querySelector('.change-status');
  let images = [];

  const productName = () => product.options[product.selectedIndex]?.textContent || '';

  function say(text) {
    status.textContent = text;
  }

  // A refusal in the page's language where the block has words for its code
  // (data-unsupported-image → "unsupported_image"), the API's own message otherwise.
  function refuse(data) {
    showErrors(form, data);
    const key = String(data.error || '').replace(/_(\w)/g, (whole, letter) => letter.toUpperCase());
    const slot = form.querySelector('.field-error[data-for="image"]');
    if (key && Object.hasOwn(words, key) && slot) {
      clearErrors(form);
      slot.textContent = words[key];
      slot.title = data.message || '';
      form.elements.image.setAttribute('aria-invalid', 'true');
    }
  }

  function thumbnail(image, index) {
    // The small size is at most 160 px on its long side: reserve its box before it loads.
    const scale = Math.min(1, 160 / Math.max(image.width || 160, image.height || 160));
    return el('img', {
      src: image.small,
      alt: `${productName()} (${index + 1})`,
      width: Math.round((image.width || 160) * scale),
      height: Math.round((image.height || 160) * scale),
      loading: 'lazy',
      'data-testid': 'image-thumbnail',
    });
  }

  function render(next) {
    images = next;
    list.replaceChildren();
    if (!images.length) {
      list.append(el('li', { class: 'empty' }, words.empty));
      return;
    }
    images.forEach((image, index) => {
      const earlier = el('button', { type: 'button', class: 'secondary', disabled: index === 0 }, words.earlier);
      const later = el('button', { type: 'button', class: 'secondary', disabled: index === images.length - 1 }, words.later);
      const remove = el('button', { type: 'button', class: 'secondary', 'data-testid': 'delete-image' }, words.remove);
      earlier.addEventListener('click', () => move(index, index - 1));
      later.addEventListener('click', () => move(index, index + 1));
      remove.addEventListener('click', () => drop(image.id, remove));
      const actions = el('span', { class: 'actions' });
      actions.append(earlier, later, remove);
      const item = el('li', { 'data-image-id': image.id });
      item.append(thumbnail(image, index), actions);
      list.append(item);
    });
  }

  async function refresh() {
    const reply = await api('GET', `/api/products/${encodeURIComponent(product.value)}`);
    if (reply.ok) render(reply.data.images || []);
  }

  async function move(from, to) {
    const order = images.map((image) => image.id);
    const [moved] = order.splice(from, 1);
    order.splice(to, 0, moved);
    const reply = await api('PUT', `/api/admin/products/${encodeURIComponent(product.value)}/images/order`, { image_ids: order });
    if (reply.ok) {
      render(reply.data.images);
      say(t('saved'));
    } else {
      refuse(reply.data);
      await refresh();
    }
  }

  async function drop(imageId, button) {
    button.disabled = true;
    const reply = await api('DELETE', `/api/admin/products/${encodeURIComponent(product.value)}/images/${imageId}`);
    if (reply.ok) {
      render(reply.data.images);
      say(t('saved'));
    } else {
      button.disabled = false;
      refuse(reply.data);
    }
  }

  async function upload(file) {
    const body = new FormData();
    body.append('image', file, file.name);
    let response;
    try {
      response = await fetch(`/api/admin/products/${encodeURIComponent(product.value)}/images`, {
        method: 'POST', body, credentials: 'same-origin', headers: { Accept: 'application/json' },
      });
    } catch {
      return { ok: false, data: { error: 'network', message: t('network_error') } };
    }
    let data = {};
    try {
      data = await response.json();
    } catch {
      data = {};
    }
    return { ok: response.ok, data: data || {} };
  }

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(form);
    say('');
    const file = form.elements.image.files[0];
    if (!file) {
      refuse({ error: 'choose', field: 'image' });
      return;
    }
    const button = form.querySelector('button[type=submit]');
    button.disabled = true;
    say(words.uploading);
    const reply = await upload(file);
    button.disabled = false;
    if (!reply.ok) {
      say('');
      refuse(reply.data);
      return;
    }
    form.elements.image.value = '';
    render(reply.data.images);
    say(t('saved'));
  });

  product.addEventListener('change', () => {
    clearErrors(form);
    say('');
    refresh();
  });
  refresh();
}
