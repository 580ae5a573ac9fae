// The watch page (and the co-view page, which is the watch page plus a private room):
// live video over WHEP or the recording, chat, reactions, the pinned product with live
// stock and Buy / Request quote, the current segment, viewer count and Q&A.
import { $, ackError, api, appendChat, chatItem, clearErrors, currentSegment, el, formatMoney, newKey, page, showErrors, t } from './page.js';
import { connectShow } from './realtime.js';
import { LivePlayer, QUALITIES } from './playback.js';
import { showApprox } from './prices.js';

const signedIn = Boolean(page.user);
const video = $('video');
const view = {
  status: page.status,
  pin: null, // the product in the card: the one chosen from the drawer, else the live one
  live: null, // the product on screen (pinned live, or at the replay's time)
  chosen: null, // a product the viewer picked in "products in this show"
  attempt: null, // {key, product_id, quantity}: one purchase attempt, one Idempotency-Key
  ordering: false,
  lastOrderId: null,
  orders: new Map(), // product id -> the latest order this page placed for it (its status line)
  played: false, // the live video has played in this page (the quality menu shows from then)
};

// --- status and video -----------------------------------------------------------

// The live video rejoins by itself (playback.js); the page says what is going on.
const player = new LivePlayer(page.show_id, video, showPlayback);

// What the viewer reads over the video in each playback state while the show is live.
const PLAYBACK_NOTES = {
  connecting: 'connecting',
  reconnecting: 'video_reconnecting',
  stalled: 'video_stalled',
  failed: 'video_failed',
};

function note(text) {
  $('player-note').textContent = text || '';
}

function renderNote() {
  // "Tap for sound" only over a picture that plays, never over black or a frozen frame.
  $('unmute').hidden = !(player.state === 'playing' && view.status === 'live' && video.muted);
  if (page.recording || view.status === 'scheduled') return; // keeps the start time shown
  if (view.status === 'ended') note(t('ended'));
  else if (view.status === 'reconnecting') note(t('host_reconnecting'));
  else note(PLAYBACK_NOTES[player.state] ? t(PLAYBACK_NOTES[player.state]) : '');
}

function showPlayback(state) {
  $('player').dataset.video = state;
  if (state === 'playing') view.played = true;
  renderNote();
  renderQuality();
}

// --- video quality (a simulcast show: the relay sends each viewer one of its layers) --
//
// "Auto" lets the relay pick by the viewer's link; High / Medium / Low cap it (Low is
// the data saver). The choice is kept in localStorage for every show, and the player
// sends it after every (re)join. A show published in one layer accepts and ignores it.

const QUALITY_KEY = 'livemall.quality';
const qualityMenu = $('quality');

function storedQuality() {
  try {
    const stored = localStorage.getItem(QUALITY_KEY);
    return QUALITIES.includes(stored) ? stored : 'auto';
  } catch {
    return 'auto';
  }
}

function renderQuality() {
  const control = $('quality-control');
  if (!control) return;
  // Once a picture has played, and while the show is on (a rejoin keeps it offered).
  control.hidden = !(view.played && (view.status === 'live' || view.status === 'reconnecting'));
}

if (qualityMenu) {
  qualityMenu.value = storedQuality();
  player.setQuality(qualityMenu.value);
  qualityMenu.addEventListener('change', () => {
    try {
      localStorage.setItem(QUALITY_KEY, qualityMenu.value);
    } catch {
      // storage refused (private mode): the choice holds for this page only
    }
    player.setQuality(qualityMenu.value);
  });
}

function setStatus(status) {
  if ((status === 'live' || status === 'reconnecting') && view.status === 'scheduled') {
    currentSegment(page.show_id).then((segment) => segment && showSegment(segment));
  }
  view.status = status;
  $('watch').dataset.status = status;
  const badge = $('status-badge');
  badge.className = `badge ${status}`;
  // A host who is reconnecting is still on: the badge stays "Live", the note explains.
  const onAir = status === 'live' || status === 'reconnecting';
  badge.textContent = onAir ? t('live') : status === 'ended' ? t('badge_ended') : t('badge_scheduled');
  if (status === 'ended') showViewers(null);
  if (page.recording) return;
  player.setShowStatus(status);
  if (status === 'ended') {
    video.srcObject = null;
    setBuyable();
    offerReplay();
  }
  renderNote();
  renderQuality();
}

/** After the show ends live, a link to its replay once the recording is there. */
async function offerReplay() {
  // The link is offered at once; the recording's parts are joined when the show ends,
  // so until GET /api/shows/{id} names it the link waits under "being prepared".
  const link = $('replay-link');
  link.hidden = false;
  for (let tries = 0; tries < 30 && view.status === 'ended'; tries += 1) {
    const reply = await api('GET', `/api/shows/${encodeURIComponent(page.show_id)}`);
    if (reply.ok && reply.data.recording) {
      link.removeAttribute('aria-disabled');
      link.textContent = link.dataset.ready || link.textContent;
      return;
    }
    if (!link.dataset.ready) {
      link.dataset.ready = link.textContent;
      link.textContent = t('replay_preparing');
      link.setAttribute('aria-disabled', 'true');
    }
    await new Promise((resolve) => setTimeout(resolve, 2000));
  }
  if (link.getAttribute('aria-disabled')) link.hidden = true; // no recording came
}

$('replay-link').addEventListener('click', (event) => {
  if ($('replay-link').getAttribute('aria-disabled')) event.preventDefault();
});

// Browsers only autoplay muted video: sound starts on the viewer's click.
$('unmute').addEventListener('click', () => {
  video.muted = false;
  video.play().catch(() => {});
  $('unmute').hidden = true;
});
window.addEventListener('pagehide', () => player.stop());

// --- the pinned product ---------------------------------------------------------

const buyForm = $('buy-form');
const quoteForm = $('quote-form');

/** The product on screen changed (a pin, an unpin, the replay's time). The card follows
 * it unless the viewer has a product from the drawer open there. */
function showPin(product) {
  // A pin event's product has no picture fields: the page's card of it (line-up) does.
  const known = product && page.products ? page.products[String(product.id)] : null;
  view.live = product ? { ...known, ...product } : null;
  if (!view.chosen) showCard(view.live);
}

/** A product from "products in this show" in the card, until "Back" (or the drawer's next). */
function chooseProduct(product) {
  view.chosen = { ...product };
  showCard(view.chosen);
}

$('card-back').addEventListener('click', () => {
  view.chosen = null;
  showCard(view.live);
  if (!view.live) $('products-toggle').focus();
});

/** A product's picture: the sized images of an upload when the payload has them, else
 * its image address; null without either (the card and drawer then show none). */
function productImage(product, size = 'small') {
  const images = product && product.images;
  if (images && typeof images === 'object') {
    const sized = Array.isArray(images) ? images[0] : images;
    const url = sized && (typeof sized === 'string' ? sized : sized[size] || sized.url || Object.values(sized)[0]);
    if (typeof url === 'string' && url) return url;
  }
  return product && typeof product.image_url === 'string' && product.image_url ? product.image_url : null;
}

function imageOf(product, size) {
  const url = productImage(product, size);
  if (!url) return null;
  const img = el('img', { src: url, alt: '', loading: 'lazy', decoding: 'async' });
  img.addEventListener('error', () => img.remove()); // a broken address shows no picture
  return img;
}

function showCard(product) {
  const changed = (product && product.id) !== (view.pin && view.pin.id);
  view.pin = product ? { ...product } : null;
  $('pin-card').hidden = !product;
  const chosen = Boolean(product && view.chosen && product.id === view.chosen.id);
  $('pin-label-live').hidden = chosen;
  $('pin-label-chosen').hidden = !chosen;
  $('card-back').hidden = !chosen;
  $('pin-card').dataset.productId = product ? product.id : '';
  if (changed) {
    cancelAttempt();
    renderOrderLine(); // the new card's own order, if this page ordered it, else nothing
    $('quote-status').textContent = '';
    clearErrors(buyForm);
    clearErrors(quoteForm);
  }
  if (!product) return;
  const picture = imageOf(product, 'small');
  $('pin-image').replaceChildren(...(picture ? [picture] : []));
  $('pin-image').hidden = !picture;
  $('pin-name').textContent = product.name;
  $('pin-price').textContent = formatMoney(product.price, product.currency);
  const listPrice = $('pin-list-price');
  listPrice.textContent =
    product.list_price && product.list_price !== product.price ? formatMoney(product.list_price, product.currency) : '';
  // "≈ 1 930,50 ₽" in the buyer's currency when a rate is known (prices.js).
  showApprox($('pin-approx'), product.price, product.currency);
  const industrial = product.kind === 'industrial';
  buyForm.hidden = industrial || !signedIn;
  quoteForm.hidden = !industrial || !signedIn;
  const minimum = Math.max(1, product.moq || 1);
  quoteForm.quantity.min = String(minimum);
  if (changed) quoteForm.quantity.value = String(minimum);
  setStock(product.stock);
}

function setStock(stock) {
  if (!view.pin) return;
  view.pin.stock = stock;
  if (view.chosen && view.chosen.id === view.pin.id) view.chosen.stock = stock;
  if (view.live && view.live.id === view.pin.id) view.live.stock = stock;
  $('pin-stock').textContent = stock > 0 ? t('left', { n: stock }) : t('sold_out');
  $('pin-stock').classList.toggle('sold-out', stock <= 0);
  buyForm.quantity.max = String(Math.max(1, Math.min(stock, 100)));
  setBuyable();
}

function setBuyable() {
  const open = view.pin && view.pin.stock > 0 && (view.status !== 'ended' || page.recording);
  $('buy-button').disabled = !open || view.attempt !== null;
}

function cancelAttempt() {
  view.attempt = null;
  $('buy-confirm').hidden = true;
  setBuyable();
}

buyForm.addEventListener('submit', (event) => {
  event.preventDefault();
  clearErrors(buyForm);
  const product = view.pin;
  const quantity = Number(buyForm.quantity.value);
  if (!product || !Number.isInteger(quantity) || quantity < 1) {
    showErrors(buyForm, { fields: [{ field: 'quantity', message: '' }] });
    return;
  }
  // A new purchase attempt: its key is reused by every retry of this attempt only.
  view.attempt = { key: newKey(), product_id: product.id, quantity };
  $('confirm-text').textContent = t('confirm_buy', {
    quantity,
    name: product.name,
    total: formatMoney(product.price * quantity, product.currency),
  });
  $('buy-confirm').hidden = false;
  $('confirm-buy').disabled = false;
  $('order-status').textContent = '';
  setBuyable();
  $('confirm-buy').focus();
});

$('cancel-buy').addEventListener('click', cancelAttempt);

// The buyer's order line; a pending order links to its checkout (address, shipping, pay).
// It belongs to the card of the order's product: an order's news that arrives while
// another product is in the card is kept for when its own product is back (issue 15,
// item 8: a payment's status once appeared under the next pinned product).
function showOrderStatus(order) {
  view.orders.set(order.product_id, order);
  if (view.pin && view.pin.id === order.product_id) renderOrderLine();
}

function renderOrderLine() {
  const status = $('order-status');
  const order = view.pin ? view.orders.get(view.pin.id) : undefined;
  status.dataset.orderId = order ? order.id : '';
  if (!order) {
    status.textContent = '';
    return;
  }
  status.textContent = t('order_status', { id: order.id, status: t(`status_${order.status}`) });
  if (order.status === 'pending') {
    status.append(' ', el('a', { href: `/orders/${order.id}/checkout`, 'data-testid': 'checkout-link' }, t('checkout')));
  }
}

$('confirm-buy').addEventListener('click', async () => {
  const attempt = view.attempt;
  if (!attempt || view.ordering) return; // a second click while ordering does nothing
  view.ordering = true;
  $('confirm-buy').disabled = true;
  $('order-status').textContent = t('ordering');
  const body = { product_id: attempt.product_id, quantity: attempt.quantity, show_id: page.show_id };
  if (page.coview) body.coview = page.coview.code;
  const reply = await api('POST', '/api/orders', body, { 'Idempotency-Key': attempt.key });
  view.ordering = false;
  if (reply.ok) {
    view.lastOrderId = reply.data.id;
    showOrderStatus(reply.data);
    cancelAttempt();
    return;
  }
  // The card changed while the order was on its way: its refusal is not the new card's.
  if (!view.pin || view.pin.id !== attempt.product_id) return;
  const status = $('order-status');
  if (reply.status === 0 || reply.status >= 500) {
    // Unknown outcome: keep the attempt (and its key) so "Confirm" retries it safely.
    status.textContent = t('network_error');
    $('confirm-buy').disabled = false;
    return;
  }
  cancelAttempt();
  if (reply.data.error === 'sold_out') status.textContent = t('sold_out');
  else if (reply.status === 401) status.textContent = t('sign_in_to_buy');
  else if (reply.status === 422) {
    showErrors(buyForm, reply.data);
    status.textContent = '';
  } else status.textContent = reply.data.message || t('try_again');
});

quoteForm.addEventListener('submit', async (event) => {
  event.preventDefault();
  clearErrors(quoteForm);
  if (!view.pin) return;
  const body = {
    product_id: view.pin.id,
    quantity: Number(quoteForm.quantity.value),
    destination_country: quoteForm.destination_country.value.trim().toUpperCase(),
    incoterm: quoteForm.incoterm.value,
    note: quoteForm.note.value,
    show_id: page.show_id,
  };
  if (page.coview) body.coview = page.coview.code;
  const button = quoteForm.querySelector('button[type=submit]');
  button.disabled = true;
  const reply = await api('POST', '/api/quotes', body);
  button.disabled = false;
  if (reply.ok) {
    $('quote-status').textContent = t('quote_sent', { id: reply.data.id });
    quoteForm.note.value = '';
  } else {
    showErrors(quoteForm, reply.data);
  }
});

// --- segment, viewers ------------------------------------------------------------

// A committee's name in the page's language: Korean from the committee itself, the
// others from the catalogs by its English name (web/pages.py, COMMITTEE_NAMES).
function committeeName(committee) {
  if (!committee) return '';
  if (page.locale === 'ko' && committee.name_ko) return committee.name_ko;
  const key = `committee:${committee.name}`;
  const name = t(key);
  return name === key ? committee.name || '' : name;
}

function showSegment(segment) {
  if (!segment) return;
  view.segmentId = segment.id;
  $('segment-title').textContent = segment.title;
  $('segment-committee').textContent = committeeName(segment.committee);
  for (const item of document.querySelectorAll('#segments [data-segment-id]')) {
    if (Number(item.dataset.segmentId) === segment.id) item.setAttribute('aria-current', 'true');
    else item.removeAttribute('aria-current');
  }
  if (!$('products-drawer').hidden) renderDrawer(); // the new segment's products first
}

// An ended show has nobody watching it live: its count is hidden, not "6 watching" from
// the people reading its page or its replay (issue 15, item 8).
function showViewers(count) {
  const counter = $('viewer-count');
  counter.hidden = view.status === 'ended';
  if (counter.hidden) counter.textContent = '';
  else if (Number.isInteger(count)) counter.textContent = t('viewers', { n: count });
}

// --- chat -------------------------------------------------------------------------

function addChat(message) {
  if (!message || !message.user) return;
  const list = message.room === 'coview' ? $('private-chat') : $('chat');
  if (!list || list.querySelector(`[data-id="${Number(message.id)}"]`)) return;
  const item = chatItem(message);
  if (message.room === 'coview') item.append(' ', el('span', { class: 'chip private' }, t('private')));
  if (page.recording && message.room !== 'coview' && Number.isFinite(showStart) && message.at) {
    // The chat replays with the video: a message appears at the moment it was sent.
    const offset = Date.parse(message.at) - showStart;
    item.dataset.offsetMs = String(offset);
    item.hidden = offset > video.currentTime * 1000;
  }
  appendChat(list, item);
}

function removeChat({ id }) {
  for (const list of [$('chat'), $('private-chat')]) {
    const item = list && list.querySelector(`[data-id="${Number(id)}"]`);
    if (item) item.remove();
  }
}

function wireChatForm(form, room, rt) {
  if (!form) return;
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const text = form.text.value.trim();
    if (!text) return;
    clearErrors(form);
    const reply = await rt.request('chat', { text, room });
    if (reply.ok) {
      form.text.value = '';
      if (reply.message) addChat(reply.message);
    } else {
      form.querySelector('.field-error').textContent = ackError(reply);
    }
  });
}

function setSlowMode(seconds) {
  const line = $('slow-mode-note');
  line.hidden = !seconds;
  line.textContent = seconds ? t('slow_mode_on', { n: seconds }) : '';
}

// --- reactions ------------------------------------------------------------------------

const EMOJI = Object.fromEntries(
  Array.from(document.querySelectorAll('.reaction'), (button) => [button.dataset.kind, button.textContent]),
);

function floatReaction(kind) {
  const emoji = EMOJI[kind];
  if (!emoji) return;
  const layer = $('reaction-layer');
  if (layer.childElementCount > 30) return;
  const bubble = el('span', { class: 'float' }, emoji);
  bubble.style.left = `${10 + Math.random() * 80}%`;
  bubble.addEventListener('animationend', () => bubble.remove());
  layer.append(bubble);
}

// --- questions ----------------------------------------------------------------------

function showQuestion(question) {
  const list = $('my-questions');
  if (!list || !question) return;
  if (page.user && question.user && question.user.id !== page.user.id && !page.coview) return;
  let item = question.id ? list.querySelector(`[data-id="${Number(question.id)}"]`) : null;
  if (!item) {
    item = el('li', { 'data-id': question.id ? Number(question.id) : null });
    item.append(el('span', { class: 'text' }, question.text));
    if (question.user && page.coview) item.prepend(el('span', { class: 'author' }, question.user.name), ' ');
    list.append(item);
  }
  if (question.answered && !item.querySelector('.answered')) {
    item.append(' ', el('span', { class: 'chip answered' }, t('answered')));
  }
}

// --- co-view ---------------------------------------------------------------------------

function showMembers(members) {
  const list = $('members');
  if (!list || !Array.isArray(members)) return;
  list.replaceChildren(...members.map((m) => el('li', { 'data-user-id': m.id }, m.name)));
}

// The owner's orders credited from this room: from the page data first, then from
// GET /api/coview/{code}/orders after each sale in the show (and each order update).
function showCredited(orders) {
  const list = $('credited');
  if (!list || !Array.isArray(orders) || orders.length === 0) return;
  list.replaceChildren(...orders.map((order) => {
    const item = el('li', { 'data-order-id': order.id }, t('credited', {
      id: order.id,
      quantity: order.quantity,
      name: order.product.name,
      total: formatMoney(order.total, order.currency),
    }));
    item.append(' ', el('span', { class: 'chip' }, t(`status_${order.status}`)));
    if (order.commission !== null && order.commission !== undefined) {
      item.append(' ', el('span', { class: 'commission' }, t('commission', { amount: formatMoney(order.commission, order.currency) })));
    }
    return item;
  }));
}

let creditTimer = null;

function refreshCredited() {
  if (!$('credited') || creditTimer) return;
  // Several sales in a burst need one fetch, not one each.
  creditTimer = setTimeout(async () => {
    creditTimer = null;
    const reply = await api('GET', `/api/coview/${encodeURIComponent(page.coview.code)}/orders`);
    if (reply.ok) showCredited(reply.data.orders);
  }, 500);
}

const copyButton = $('copy-invite');
if (copyButton) {
  const input = $('invite-link');
  // Without a configured public_url the server gives a relative link (it never trusts
  // the Host header): complete it with the address this browser is on.
  if (input.value.startsWith('/')) input.value = new URL(input.value, window.location.href).href;
  copyButton.addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText(input.value);
    } catch {
      input.select();
      document.execCommand('copy');
    }
    $('copy-done').textContent = t('copied');
  });
}

const startCoview = $('start-coview');
if (startCoview) {
  startCoview.addEventListener('click', async () => {
    startCoview.disabled = true;
    const reply = await api('POST', '/api/coview', { show_id: page.show_id });
    startCoview.disabled = false;
    if (reply.ok && reply.data.code) window.location.assign(`/coview/${encodeURIComponent(reply.data.code)}`);
    else $('coview-error').textContent = reply.data.message || t('try_again');
  });
}

// --- replay: the recording with each pin at its moment ----------------------------------
//
// The shoppable replay: a marker per pin on a timeline under the video and chapters per
// segment (its committee) with the products shown in it; choosing one seeks there. The
// card, "Now:" and the chat follow the playback time. A segment's chapter starts at its
// first pin (segment changes themselves are not recorded with a time).

const replayPins = [...(page.pins || [])].sort((a, b) => a.offset_ms - b.offset_ms);
const showStart = page.started_at ? Date.parse(page.started_at) : NaN;

function clock(ms) {
  const total = Math.max(0, Math.floor(ms / 1000));
  const hours = Math.floor(total / 3600);
  const minutes = Math.floor((total % 3600) / 60);
  const seconds = String(total % 60).padStart(2, '0');
  return hours ? `${hours}:${String(minutes).padStart(2, '0')}:${seconds}` : `${minutes}:${seconds}`;
}

function segmentById(id) {
  const group = (page.lineup || []).find((g) => g.segment && g.segment.id === id);
  return group ? group.segment : null;
}

function seekTo(ms) {
  // A little past the pin's own moment, so the pin is the one in force there.
  video.currentTime = (ms + 50) / 1000;
}

function replayLength() {
  if (Number.isFinite(video.duration) && video.duration > 0) return video.duration * 1000;
  const last = replayPins.reduce((most, pin) => Math.max(most, pin.until_ms || pin.offset_ms), 0);
  return last > 0 ? last * 1.05 : 1;
}

function productName(id) {
  const product = page.products && page.products[String(id)];
  return product ? product.name : '';
}

function buildTimeline() {
  const timeline = $('replay-timeline');
  if (!timeline) return;
  const length = replayLength();
  for (const marker of timeline.querySelectorAll('.marker')) marker.remove();
  replayPins.forEach((pin, index) => {
    const label = t('jump_to', { name: productName(pin.product_id), time: clock(pin.offset_ms) });
    const marker = el('button', {
      type: 'button', class: 'marker', 'data-offset-ms': pin.offset_ms, 'data-pin': index,
      'data-testid': 'replay-marker', 'aria-label': label, title: label,
    });
    marker.style.left = `${Math.min(100, (pin.offset_ms / length) * 100)}%`;
    marker.addEventListener('click', () => seekTo(pin.offset_ms));
    timeline.append(marker);
  });
}

function buildChapters() {
  const list = $('chapters');
  if (!list) return;
  const chapters = [];
  for (const pin of replayPins) {
    let chapter = chapters[chapters.length - 1];
    if (!chapter || chapter.segmentId !== pin.segment_id) {
      chapter = { segmentId: pin.segment_id, start: pin.offset_ms, pins: [] };
      chapters.push(chapter);
    }
    chapter.pins.push(pin);
  }
  list.replaceChildren(...chapters.map((chapter) => {
    const segment = segmentById(chapter.segmentId);
    const item = el('li', { class: 'chapter', 'data-segment-id': chapter.segmentId });
    const head = el('button', { type: 'button', class: 'link chapter-seek', 'data-offset-ms': chapter.start });
    head.append(el('span', { class: 'at' }, clock(chapter.start)), ' ',
      el('span', { class: 'chapter-title' }, segment ? segment.title : ''));
    if (segment) head.append(' ', el('span', { class: 'chip committee' }, committeeName(segment.committee)));
    head.addEventListener('click', () => seekTo(chapter.start));
    const products = el('ol', { class: 'chapter-products' });
    for (const pin of chapter.pins) {
      const button = el('button', { type: 'button', class: 'link product-seek', 'data-offset-ms': pin.offset_ms });
      button.append(el('span', { class: 'at' }, clock(pin.offset_ms)), ' ', productName(pin.product_id));
      button.addEventListener('click', () => seekTo(pin.offset_ms));
      const row = el('li');
      row.append(button);
      products.append(row);
    }
    item.append(head, products);
    return item;
  }));
}

/** Shows the chat messages sent up to the playback time (each `li` knows its moment). */
function syncReplayChat(ms) {
  for (const item of $('chat').children) {
    const at = Number(item.dataset.offsetMs);
    item.hidden = Number.isFinite(at) && at > ms;
  }
}

function startReplay() {
  // The viewer presses play (with sound); pins follow the playback position.
  video.autoplay = false;
  video.muted = false;
  video.controls = true;
  video.src = page.recording;
  let shownSegment = null;
  const sync = () => {
    const ms = video.currentTime * 1000;
    let active = null;
    let latest = null; // the last pin reached, in force or not: its segment is "Now"
    for (const pin of replayPins) {
      if (pin.offset_ms <= ms) latest = pin;
      if (pin.offset_ms <= ms && (pin.until_ms === null || pin.until_ms === undefined || ms < pin.until_ms)) active = pin;
    }
    const product = active ? page.products[String(active.product_id)] : null;
    if ((product && product.id) !== (view.live && view.live.id)) showPin(product || null);
    const segment = segmentById((latest || replayPins[0] || {}).segment_id);
    if (segment && segment !== shownSegment) {
      shownSegment = segment;
      showSegment(segment);
    }
    const progress = $('timeline-progress');
    if (progress) progress.style.width = `${Math.min(100, (ms / replayLength()) * 100)}%`;
    for (const marker of document.querySelectorAll('#replay-timeline .marker, #chapters [data-offset-ms]')) {
      const pin = marker.dataset.pin !== undefined ? replayPins[Number(marker.dataset.pin)] : null;
      if (pin) marker.classList.toggle('current', pin === active);
    }
    syncReplayChat(ms);
  };
  for (const event of ['loadedmetadata', 'timeupdate', 'seeked']) video.addEventListener(event, sync);
  video.addEventListener('loadedmetadata', buildTimeline);
  video.addEventListener('durationchange', buildTimeline);
  buildTimeline();
  buildChapters();
  sync();
}

// --- products in this show (the drawer) -----------------------------------------------
//
// Every product of the line-up, grouped by segment with the current segment first; Buy
// and Request a quote open the product in the card and go on there (the same purchase
// attempt, confirmation and quote form as the pinned product).

const drawer = $('products-drawer');
const drawerToggle = $('products-toggle');

function lineupGroups() {
  const groups = (page.lineup || []).filter((group) => group.product_ids && group.product_ids.length);
  const current = groups.findIndex((group) => group.segment && group.segment.id === view.segmentId);
  return current > 0 ? [groups[current], ...groups.slice(0, current), ...groups.slice(current + 1)] : groups;
}

function drawerItem(product) {
  const item = el('li', { class: 'drawer-item', 'data-product-id': product.id, 'data-testid': 'drawer-item' });
  const picture = imageOf(product, 'small');
  const thumb = el('span', { class: 'thumb' });
  if (picture) thumb.append(picture);
  else thumb.classList.add('no-image');
  const facts = el('div', { class: 'facts-line' });
  facts.append(el('span', { class: 'product-name' }, product.name));
  const price = el('span', { class: 'price' }, formatMoney(product.price, product.currency));
  facts.append(price);
  const stock = el('span', { class: 'stock' });
  facts.append(stock);
  item.append(thumb, facts);
  if (signedIn) {
    const industrial = product.kind === 'industrial';
    const button = el('button', { type: 'button', class: industrial ? 'secondary' : '', 'data-action': industrial ? 'quote' : 'buy' },
      industrial ? t('request_quote') : t('buy'));
    button.setAttribute('aria-label', `${industrial ? t('request_quote') : t('buy')}: ${product.name}`);
    button.addEventListener('click', () => pickFromDrawer(product.id, industrial ? 'quote' : 'buy'));
    item.append(button);
  }
  renderDrawerStock(item, product);
  return item;
}

function renderDrawerStock(item, product) {
  const stock = item.querySelector('.stock');
  stock.textContent = product.stock > 0 ? t('left', { n: product.stock }) : t('sold_out');
  stock.classList.toggle('sold-out', product.stock <= 0);
  const button = item.querySelector('button[data-action="buy"]');
  if (button) button.disabled = product.stock <= 0 || (view.status === 'ended' && !page.recording);
}

function renderDrawer() {
  const list = $('drawer-list');
  const groups = lineupGroups();
  if (!groups.length) {
    list.replaceChildren(el('p', { class: 'empty' }, t('drawer_empty')));
    return;
  }
  list.replaceChildren(...groups.map((group) => {
    const section = el('section', { class: 'drawer-group', 'data-segment-id': group.segment.id });
    const title = el('h3');
    title.append(group.segment.title, ' ', el('span', { class: 'chip committee' }, committeeName(group.segment.committee)));
    if (group.segment.id === view.segmentId) title.append(' ', el('span', { class: 'chip now' }, t('segment_now')));
    const items = el('ul', { class: 'drawer-items' });
    for (const id of group.product_ids) {
      const product = page.products && page.products[String(id)];
      if (product) items.append(drawerItem(product));
    }
    section.append(title, items);
    return section;
  }));
}

function pickFromDrawer(productId, action) {
  const product = page.products[String(productId)];
  if (!product) return;
  closeSheet(drawer, false);
  chooseProduct(product);
  if (action === 'buy') {
    buyForm.quantity.value = '1';
    buyForm.requestSubmit(); // the card's own Buy: a purchase attempt, then Confirm
  } else {
    quoteForm.quantity.focus();
  }
}

// --- sheets: the drawer, and on a phone the questions --------------------------------

function openSheet(sheet, toggle) {
  sheet.hidden = false;
  sheet.dataset.open = 'true';
  if (toggle) toggle.setAttribute('aria-expanded', 'true');
  const heading = sheet.querySelector('h2[tabindex]');
  if (heading) heading.focus();
}

function closeSheet(sheet, returnFocus = true) {
  if (sheet === drawer) sheet.hidden = true;
  delete sheet.dataset.open;
  const toggle = document.querySelector(`[aria-controls="${sheet.id}"]`);
  if (toggle) {
    toggle.setAttribute('aria-expanded', 'false');
    if (returnFocus) toggle.focus();
  }
}

drawerToggle.addEventListener('click', () => {
  if (drawer.hidden) {
    renderDrawer();
    openSheet(drawer, drawerToggle);
  } else {
    closeSheet(drawer);
  }
});

$('qa-toggle').addEventListener('click', () => {
  const panel = $('qa-panel');
  if (panel.dataset.open) closeSheet(panel);
  else openSheet(panel, $('qa-toggle'));
});

for (const button of document.querySelectorAll('[data-close]')) {
  button.addEventListener('click', () => closeSheet($(button.dataset.close)));
}

document.addEventListener('keydown', (event) => {
  if (event.key !== 'Escape') return;
  for (const sheet of [drawer, $('qa-panel')]) {
    if (sheet.dataset.open) closeSheet(sheet);
  }
});

// --- the phone overlay: a tap on the video hides and shows it ------------------------

function setOverlays(shown) {
  $('watch').dataset.overlays = shown ? 'shown' : 'hidden';
  const toggle = $('overlays-toggle');
  toggle.setAttribute('aria-pressed', String(!shown));
  toggle.querySelector('.rail-text').textContent = shown ? t('overlays_hide') : t('overlays_show');
}

$('overlays-toggle').addEventListener('click', () => setOverlays($('watch').dataset.overlays === 'hidden'));
$('player').addEventListener('click', (event) => {
  // The live video only (a replay's video has its own controls to tap); buttons and
  // links over the video do their own thing.
  if (page.recording || event.target.closest('button, a, select')) return;
  if (!window.matchMedia('(max-width: 819px)').matches) return;
  setOverlays($('watch').dataset.overlays === 'hidden');
});

// The co-view page on a phone: the show's chat or the room's, one at a time.
for (const button of document.querySelectorAll('.chat-tabs [data-chat-tab]')) {
  button.addEventListener('click', () => {
    $('watch').dataset.chatTab = button.dataset.chatTab;
    for (const other of document.querySelectorAll('.chat-tabs [data-chat-tab]')) {
      other.setAttribute('aria-pressed', String(other === button));
    }
  });
}

// --- wiring ----------------------------------------------------------------------------

function start() {
  showSegment(page.segment);
  if (page.coview && page.coview.is_owner) showCredited(page.coview.orders);
  if (page.recording) {
    startReplay();
  } else {
    showPin(page.pin);
    setStatus(page.status);
  }

  const rt = connectShow({ show: page.show_id, coview: page.coview && page.coview.code });
  import('./selling.js').then((m) => m.initSelling(rt)); // LIVE SELLING: flash deals, auctions (issue 17)
  import('./vouchers.js').then((m) => m.initVouchers(rt)); // VOUCHERS: pinned and claimed (issue 17.3)
  rt.on('state', (state) => {
    $('watch').dataset.connected = 'true'; // the page has the room's state (tests wait for it)
    if (state.status) setStatus(state.status);
    if ('segment' in state) showSegment(state.segment);
    if ('pin' in state && !page.recording) showPin(state.pin);
    if ('viewers' in state) showViewers(state.viewers);
    if ('slow_mode' in state) setSlowMode(state.slow_mode);
    for (const message of state.chat || []) addChat(message);
    for (const question of state.questions || []) showQuestion(question);
  });
  rt.on('disconnect', () => ($('watch').dataset.connected = 'false'));
  rt.on('chat', addChat);
  rt.on('chat_deleted', removeChat);
  rt.on('segment', showSegment);
  rt.on('pin', (data) => !page.recording && showPin(data.product || data));
  rt.on('unpin', () => !page.recording && showPin(null));
  rt.on('stock', ({ product_id, stock }) => {
    if (view.pin && view.pin.id === product_id) setStock(stock);
    if (view.live && view.live.id === product_id) view.live.stock = stock;
    if (view.chosen && view.chosen.id === product_id) view.chosen.stock = stock;
    const known = page.products && page.products[String(product_id)];
    if (known) {
      known.stock = stock;
      const row = $('drawer-list').querySelector(`[data-product-id="${Number(product_id)}"]`);
      if (row) renderDrawerStock(row, known);
    }
  });
  rt.on('sale', refreshCredited);
  rt.on('credited_order', refreshCredited); // a credited order paid, shipped, refunded… (issue 15, item 8)
  rt.on('order', (order) => {
    refreshCredited();
    const mine = order && view.orders.get(order.product_id);
    if (mine && mine.id === order.id) showOrderStatus(order); // the latest order of its product
  });
  rt.on('viewers', ({ count }) => showViewers(count));
  rt.on('show_status', ({ status }) => setStatus(status));
  rt.on('slow_mode', (data) => setSlowMode(data.seconds));
  rt.on('question', showQuestion);
  // Reactions arrive counted per second: a few bubbles stand for many taps.
  rt.on('reactions', ({ counts }) => {
    for (const [kind, count] of Object.entries(counts || {})) {
      for (let i = 0; i < Math.min(Number(count) || 0, 5); i += 1) floatReaction(kind);
    }
  });
  rt.on('coview_members', ({ members }) => showMembers(members));
  rt.on('muted', ({ seconds }) => {
    const slot = document.querySelector('#chat-form .field-error');
    if (slot) slot.textContent = t('muted', { n: seconds });
  });
  rt.on('quote', (quote) => {
    if (quote && quote.unit_price !== null && quote.unit_price !== undefined && quote.currency) {
      $('quote-status').textContent = t('quote_answered', { id: quote.id, price: formatMoney(quote.unit_price, quote.currency) });
    }
  });

  wireChatForm($('chat-form'), 'show', rt);
  wireChatForm($('private-chat-form'), 'coview', rt);

  for (const button of document.querySelectorAll('.reaction')) {
    button.addEventListener('click', async () => {
      floatReaction(button.dataset.kind);
      await rt.request('react', { kind: button.dataset.kind });
    });
  }

  const askForm = $('ask-form');
  if (askForm) {
    askForm.addEventListener('submit', async (event) => {
      event.preventDefault();
      const text = askForm.text.value.trim();
      if (!text) return;
      clearErrors(askForm);
      const reply = await rt.request('ask', { text });
      if (reply.ok) {
        askForm.text.value = '';
        showQuestion({ id: reply.id, text, user: page.user });
        askForm.querySelector('.field-error').textContent = t('asked');
      } else {
        askForm.querySelector('.field-error').textContent = ackError(reply);
      }
    });
  }
  window.livemall = { view, rt, player }; // for the browser tests and for debugging
}

start();
