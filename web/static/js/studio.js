// The host's studio: camera and microphone preview with device choice, Go live / End
// show over WHIP, segment switcher, one-click pin/unpin, moderated chat, questions
// queue, sales ticker and viewer count.
import { $, ackError, appendChat, chatItem, currentSegment, el, page, t } from './page.js';
import { connectShow } from './realtime.js';
import { publish } from './webrtc.js';

const preview = $('preview');
const studio = {
  stream: null,
  publisher: null,
  status: page.status,
  pinned: page.pinned_product_id,
  segmentId: page.segment && page.segment.id,
};

// --- camera and microphone ---------------------------------------------------------

function constraints() {
  const camera = $('camera').value;
  const microphone = $('microphone').value;
  return {
    video: { ...(camera ? { deviceId: { exact: camera } } : {}), width: { ideal: 1280 }, height: { ideal: 720 } },
    audio: microphone ? { deviceId: { exact: microphone } } : true,
  };
}

async function listDevices() {
  const devices = await navigator.mediaDevices.enumerateDevices();
  for (const [kind, select] of [['videoinput', $('camera')], ['audioinput', $('microphone')]]) {
    const current = select.value;
    const inUse = studio.stream && studio.stream.getTracks().find((tr) => tr.kind === (kind === 'videoinput' ? 'video' : 'audio'));
    const active = inUse ? inUse.getSettings().deviceId : current;
    select.replaceChildren(
      ...devices
        .filter((d) => d.kind === kind)
        .map((d, i) => el('option', { value: d.deviceId, selected: d.deviceId === active }, d.label || `${kind} ${i + 1}`)),
    );
  }
}

async function startPreview() {
  const fresh = await navigator.mediaDevices.getUserMedia(constraints());
  const old = studio.stream;
  studio.stream = fresh;
  preview.srcObject = fresh;
  if (studio.publisher) {
    for (const track of fresh.getTracks()) await studio.publisher.replaceTrack(track);
  }
  if (old) for (const track of old.getTracks()) track.stop();
  $('camera-note').textContent = '';
}

async function initDevices() {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    $('camera-note').textContent = t('camera_failed');
    return;
  }
  try {
    await startPreview();
    await listDevices(); // labels are only readable once access was granted
  } catch {
    $('camera-note').textContent = t('camera_failed');
  }
}

for (const select of [$('camera'), $('microphone')]) {
  select.addEventListener('change', () => startPreview().catch(() => ($('camera-note').textContent = t('camera_failed'))));
}

// --- going live ----------------------------------------------------------------------

function showError(text) {
  const line = $('live-error');
  line.textContent = text || '';
  line.hidden = !text;
}

function setAir(status) {
  if (status === 'live' && studio.status === 'scheduled') {
    currentSegment(page.show_id).then((segment) => segment && markSegment(segment.id));
  }
  studio.status = status;
  $('studio').dataset.status = status;
  const badge = $('air-status');
  badge.className = `badge ${status}`;
  badge.textContent = status === 'live' ? t('on_air') : status === 'ended' ? t('badge_ended') : t('off_air');
  // Go live is offered again after a reload during a show (the server answers 409
  // publisher_exists while the old session lasts); End show needs this page's session.
  $('go-live').disabled = status === 'ended' || studio.publisher !== null;
  $('end-show').disabled = studio.publisher === null;
}

$('go-live').addEventListener('click', async () => {
  if (studio.publisher || !studio.stream) {
    if (!studio.stream) showError(t('camera_failed'));
    return;
  }
  showError('');
  $('go-live').disabled = true;
  $('air-status').textContent = t('going_live');
  try {
    studio.publisher = await publish(page.show_id, studio.stream, page.token, page.max_bitrate);
    setAir('live');
  } catch (err) {
    studio.publisher = null;
    showError(err.data && err.data.error === 'publisher_exists' ? t('publisher_exists') : err.message || t('try_again'));
    setAir(studio.status);
  }
});

$('end-show').addEventListener('click', async () => {
  $('end-show').disabled = true;
  const publisher = studio.publisher;
  studio.publisher = null;
  if (publisher) await publisher.stop().catch(() => {});
  setAir('ended');
});

// --- stage controls -----------------------------------------------------------------

function markSegment(segmentId) {
  studio.segmentId = segmentId;
  for (const button of document.querySelectorAll('.segment[data-segment-id]')) {
    button.setAttribute('aria-pressed', String(Number(button.dataset.segmentId) === segmentId));
  }
}

function markPinned(productId) {
  studio.pinned = productId;
  for (const button of document.querySelectorAll('button.pin[data-product-id]')) {
    const pinned = Number(button.dataset.productId) === productId;
    button.setAttribute('aria-pressed', String(pinned));
    button.textContent = pinned ? t('pinned') : t('pin');
  }
}

// --- chat with moderation -------------------------------------------------------------

function addChat(rt, message) {
  if (!message || !message.user || message.room === 'coview') return;
  const list = $('chat');
  if (list.querySelector(`[data-id="${Number(message.id)}"]`)) return;
  const item = chatItem(message);
  if (message.user.role !== 'host' && (!page.user || message.user.id !== page.user.id)) {
    const tools = el('span', { class: 'tools' });
    const remove = el('button', { type: 'button', class: 'link delete' }, t('delete'));
    remove.addEventListener('click', async () => {
      const reply = await rt.request('delete_chat', { id: message.id });
      if (reply.ok) item.remove();
      else showError(ackError(reply));
    });
    const mute = el('button', { type: 'button', class: 'link mute' }, t('mute'));
    mute.addEventListener('click', async () => {
      const reply = await rt.request('mute', { user_id: message.user.id, seconds: 300 });
      if (reply.ok) mute.disabled = true;
      else showError(ackError(reply));
    });
    tools.append(remove, ' ', mute);
    item.append(' ', tools);
  }
  appendChat(list, item);
}

// --- questions and sales --------------------------------------------------------------

function addQuestion(rt, question) {
  const list = $('questions');
  let item = list.querySelector(`[data-id="${Number(question.id)}"]`);
  if (!item) {
    item = el('li', { 'data-id': Number(question.id) });
    if (question.via_coview) item.append(el('span', { class: 'chip coview' }, t('via_coview')), ' ');
    item.append(el('span', { class: 'author' }, question.user ? question.user.name : ''), ' ',
      el('span', { class: 'text' }, question.text), ' ');
    const answer = el('button', { type: 'button', class: 'link answer' }, t('answer'));
    answer.addEventListener('click', async () => {
      const reply = await rt.request('answer', { question_id: question.id });
      if (reply.ok) markAnswered(item);
      else showError(ackError(reply));
    });
    item.append(answer);
    list.append(item);
  }
  if (question.answered) markAnswered(item);
}

function markAnswered(item) {
  item.classList.add('answered');
  const button = item.querySelector('button.answer');
  if (button) button.replaceWith(el('span', { class: 'chip answered' }, t('answered')));
}

function addSale({ product_id, quantity }) {
  const product = page.products[String(product_id)];
  const line = el('li', {}, t('sold', { quantity, name: product ? product.name : `#${product_id}` }));
  $('sales').prepend(line);
  while ($('sales').children.length > 50) $('sales').lastElementChild.remove();
}

// --- wiring -----------------------------------------------------------------------------

function start() {
  setAir(page.status);
  markSegment(studio.segmentId);
  markPinned(studio.pinned);
  initDevices();

  const rt = connectShow({ show: page.show_id, token: page.token });
  rt.on('state', (state) => {
    $('studio').dataset.connected = 'true';
    if (state.status) setAir(state.status);
    if (state.segment) markSegment(state.segment.id);
    if ('pin' in state) markPinned(state.pin ? state.pin.id : null);
    if ('viewers' in state) $('viewer-count').textContent = t('viewers', { n: state.viewers });
    if ('slow_mode' in state) $('slow-mode').value = String(state.slow_mode);
    for (const message of state.chat || state.history || []) addChat(rt, message);
    for (const question of state.questions || []) addQuestion(rt, question);
  });
  rt.on('disconnect', () => ($('studio').dataset.connected = 'false'));
  rt.on('chat', (message) => addChat(rt, message));
  rt.on('chat_deleted', ({ id }) => {
    const item = $('chat').querySelector(`[data-id="${Number(id)}"]`);
    if (item) item.remove();
  });
  rt.on('segment', (segment) => markSegment(segment.id));
  rt.on('pin', (data) => markPinned((data.product || data).id));
  rt.on('unpin', () => markPinned(null));
  rt.on('question', (question) => addQuestion(rt, question));
  rt.on('sale', addSale);
  rt.on('stock', ({ product_id, stock }) => {
    for (const cell of document.querySelectorAll(`[data-stock-for="${Number(product_id)}"]`)) cell.textContent = stock;
  });
  rt.on('viewers', ({ count }) => ($('viewer-count').textContent = t('viewers', { n: count })));
  rt.on('show_status', ({ status }) => {
    if (status === 'ended' && studio.publisher) {
      studio.publisher.pc.close(); // ended elsewhere (an admin, or the relay lost us)
      studio.publisher = null;
    }
    setAir(status);
  });

  for (const button of document.querySelectorAll('.segment[data-segment-id]')) {
    button.addEventListener('click', async () => {
      const reply = await rt.request('segment', { segment_id: Number(button.dataset.segmentId) });
      if (reply.ok) markSegment(Number(button.dataset.segmentId));
      else showError(ackError(reply));
    });
  }
  for (const button of document.querySelectorAll('button.pin[data-product-id]')) {
    button.addEventListener('click', async () => {
      const productId = Number(button.dataset.productId);
      const reply = studio.pinned === productId
        ? await rt.request('unpin', {})
        : await rt.request('pin', { product_id: productId });
      if (reply.ok) markPinned(studio.pinned === productId ? null : productId);
      else showError(ackError(reply));
    });
  }
  $('unpin').addEventListener('click', async () => {
    const reply = await rt.request('unpin', {});
    if (reply.ok) markPinned(null);
    else showError(ackError(reply));
  });
  $('slow-mode').addEventListener('change', async () => {
    const reply = await rt.request('slow_mode', { seconds: Number($('slow-mode').value) });
    if (!reply.ok) showError(ackError(reply));
  });
  const form = $('chat-form');
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const text = form.text.value.trim();
    if (!text) return;
    const reply = await rt.request('chat', { text, room: 'show' });
    if (reply.ok) {
      form.text.value = '';
      if (reply.message) addChat(rt, reply.message);
    } else form.querySelector('.field-error').textContent = ackError(reply);
  });
  window.livemall = { studio, rt };
}

start();
