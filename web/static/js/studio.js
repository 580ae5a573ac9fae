// The host's studio: camera and microphone preview with device choice, Go live / End
// show over WHIP, segment switcher, one-click pin/unpin, moderated chat, questions
// queue, sales ticker and viewer count.
import { $, ackError, api, appendChat, chatItem, currentSegment, el, page, t } from './page.js';
import { connectShow } from './realtime.js';
import { Backoff, sleep } from './backoff.js';
import { HttpError, isTransient, layersFor, leave, publish } from './webrtc.js';

const preview = $('preview');
const studio = {
  stream: null,
  publisher: null,
  layers: null, // video layers the show was published with from this tab (a resume must match)
  resuming: null, // an AbortController while a resume runs (End aborts it)
  wake: null, // an AbortController that cuts a resume's back-off short
  lostCheck: null, // a timer after a "reconnecting" status (see show_status)
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

// --- going live, and staying live ---------------------------------------------------
//
// Go live publishes once. After that this tab keeps the show published by itself:
// when its connection fails or drops, or the page is reloaded while the show is on,
// it publishes again (the relay holds a lost show "reconnecting" for a grace period
// and resumes it under the same viewers). sessionStorage remembers, per tab, that this
// tab was publishing the show, and the WHIP resource to DELETE when the host ends it.
// A camera of 1280x720 or more publishes three layers (simulcast), a smaller one one;
// the relay resumes a show only with as many layers as it was published with, so that
// count is remembered too and every resume uses it, whatever the camera gives now.

const PUBLISHING_KEY = `livemall.publishing.${page.show_id}`;
const CONNECT_MS = 10000; // a publisher not connected by then is dropped and resumed
const DISCONNECTED_GRACE_MS = 3000; // ICE often recovers from "disconnected" by itself
const LOST_STATUS_GRACE_MS = 5000; // see the show_status handler
// A relay notices a lost publisher within seconds (media_timeout is 10 s): 409s for
// longer than this while the show stays "live" mean someone else publishes it.
const HELD_GIVE_UP_MS = 30000;

function remember(publisher) {
  try {
    sessionStorage.setItem(PUBLISHING_KEY, JSON.stringify({ location: publisher.location, layers: publisher.layers }));
  } catch {
    // storage refused (private mode): only a reload loses the resume
  }
}

function remembered() {
  try {
    return JSON.parse(sessionStorage.getItem(PUBLISHING_KEY) || 'null');
  } catch {
    return null;
  }
}

function forget() {
  try {
    sessionStorage.removeItem(PUBLISHING_KEY);
  } catch {
    // nothing stored
  }
}

function showError(text) {
  const line = $('live-error');
  line.textContent = text || '';
  line.hidden = !text;
}

function publishNote(text) {
  const line = $('publish-note');
  line.textContent = text || '';
  line.hidden = !text;
}

const AIR_TEXT = { live: 'on_air', reconnecting: 'air_reconnecting', ended: 'badge_ended' };

function setAir(status) {
  if ((status === 'live' || status === 'reconnecting') && studio.status === 'scheduled') {
    currentSegment(page.show_id).then((segment) => segment && markSegment(segment.id));
  }
  studio.status = status;
  $('studio').dataset.status = status;
  const badge = $('air-status');
  badge.className = `badge ${status}`;
  badge.textContent = t(AIR_TEXT[status] || 'off_air');
  // Go live is offered in every state but "ended": after a reload in another tab
  // it resumes a reconnecting show, and during a resume it tries again at once.
  $('go-live').disabled = status === 'ended' || studio.publisher !== null;
  // End is offered whenever the show is on, whoever publishes it (see endShow).
  const onAir = status === 'live' || status === 'reconnecting';
  $('end-show').disabled = !(onAir || studio.publisher || studio.resuming);
  $('studio').dataset.publishing = studio.publisher ? 'true' : studio.resuming ? 'resuming' : 'false';
}

/** The number of video layers to offer: the show's own once this tab (or this tab
 * before a reload) published it; otherwise what the camera allows. */
function layersToOffer() {
  if (studio.layers) return studio.layers;
  const held = remembered();
  if (held) return held.layers || 1; // stored before simulcast: one layer
  return layersFor(studio.stream && studio.stream.getVideoTracks()[0]);
}

/** One WHIP publish with the right number of layers. Taking over a reconnecting show
 * that this tab did not publish (OBS, a closed tab), the camera's count is a guess:
 * if the relay refuses it (400 bad_offer: the show has the other count), the other
 * count is tried once. */
async function publishShow(signal) {
  const layers = layersToOffer();
  const options = { maxBitrate: page.max_bitrate, signal };
  try {
    return await publish(page.show_id, studio.stream, page.token, { ...options, layers });
  } catch (err) {
    const guessed = !studio.layers && !remembered() && studio.status === 'reconnecting';
    if (!guessed || !(err instanceof HttpError) || err.status !== 400 || err.data.error !== 'bad_offer') throw err;
    return publish(page.show_id, studio.stream, page.token, { ...options, layers: layers > 1 ? 1 : 3 });
  }
}

/** This page's publisher from now on: watched, and remembered across a reload. */
function adopt(publisher) {
  studio.publisher = publisher;
  studio.layers = publisher.layers;
  remember(publisher);
  const { pc } = publisher;
  const lostUnlessConnected = () => {
    if (studio.publisher === publisher && pc.connectionState !== 'connected') resume();
  };
  pc.addEventListener('connectionstatechange', () => {
    if (studio.publisher !== publisher) return;
    if (pc.connectionState === 'failed' || pc.connectionState === 'closed') resume();
    else if (pc.connectionState === 'disconnected') setTimeout(lostUnlessConnected, DISCONNECTED_GRACE_MS);
  });
  setTimeout(lostUnlessConnected, CONNECT_MS);
  setAir('live');
}

/** Closes this page's connection without DELETE: DELETE would end the show, while a
 * closed connection only puts it in "reconnecting" until we publish again. */
function dropPublisher() {
  if (studio.publisher) studio.publisher.pc.close();
  studio.publisher = null;
}

function refusal(err) {
  if (err.data && err.data.error === 'publisher_exists') return t('publisher_exists');
  return err.message || t('try_again');
}

$('go-live').addEventListener('click', async () => {
  if (studio.resuming) {
    if (studio.wake) studio.wake.abort(); // skip the rest of the back-off: try now
    return;
  }
  if (studio.publisher || !studio.stream) {
    if (!studio.stream) showError(t('camera_failed'));
    return;
  }
  showError('');
  $('go-live').disabled = true;
  $('air-status').textContent = t('going_live');
  try {
    adopt(await publishShow());
  } catch (err) {
    studio.publisher = null;
    showError(refusal(err));
    setAir(studio.status);
  }
});

/** Publishes again until it works, the show ends or the host ends it. A 409
 * publisher_exists means the relay still holds the lost session (it notices within
 * seconds and puts the show in "reconnecting"): wait and try again. */
async function resume() {
  if (studio.resuming || studio.status === 'ended') return;
  dropPublisher();
  if (!studio.stream) {
    showError(t('camera_failed'));
    return;
  }
  const loop = new AbortController();
  studio.resuming = loop;
  showError('');
  setAir(studio.status);
  const backoff = new Backoff({ base: 1000, max: 5000 });
  let heldSince = null;
  for (let attempt = 1; !loop.signal.aborted; attempt += 1) {
    publishNote(t('resuming', { n: attempt }));
    try {
      const publisher = await publishShow(loop.signal);
      if (loop.signal.aborted) {
        await publisher.stop().catch(() => {}); // the host pressed End meanwhile
        break;
      }
      studio.resuming = null;
      adopt(publisher);
      break;
    } catch (err) {
      if (loop.signal.aborted) break;
      if (!isTransient(err)) {
        showError(t('resume_refused', { message: refusal(err) }));
        break;
      }
      const held = err.data && err.data.error === 'publisher_exists' && studio.status === 'live';
      heldSince = held ? heldSince ?? Date.now() : null;
      if (held && Date.now() - heldSince > HELD_GIVE_UP_MS) {
        showError(t('publisher_exists'));
        break;
      }
    }
    studio.wake = new AbortController(); // Go live and End cut the wait short
    await sleep(backoff.next(), studio.wake.signal);
  }
  if (studio.resuming === loop) studio.resuming = null;
  publishNote('');
  setAir(studio.status);
}

// End show asks first (a <dialog>, so it can be styled and tested like the page).
$('end-show').addEventListener('click', () => $('end-dialog').showModal());
$('cancel-end').addEventListener('click', () => $('end-dialog').close());
$('confirm-end').addEventListener('click', () => {
  $('end-dialog').close();
  endShow();
});

/** DELETE on this page's WHIP resource (during a resume or after a reload: the one
 * remembered, which the relay still knows while the show is reconnecting). Without
 * one (another tab or OBS publishes), or if the relay no longer knows it, the show is
 * ended by POST /api/shows/{id}/end. Either way the relay ends it for everyone. */
async function endShow() {
  $('end-show').disabled = true;
  if (studio.resuming) studio.resuming.abort();
  if (studio.wake) studio.wake.abort();
  const publisher = studio.publisher;
  studio.publisher = null;
  const held = remembered();
  let ended = false;
  if (publisher) {
    const response = await publisher.stop().catch(() => null);
    ended = Boolean(response && response.ok);
  } else if (held && held.location) {
    const response = await leave(held.location, { Authorization: `Bearer ${page.token}` });
    ended = Boolean(response && response.ok);
  }
  if (!ended) {
    const reply = await api('POST', `/api/shows/${encodeURIComponent(page.show_id)}/end`, {});
    ended = reply.ok;
  }
  forget();
  publishNote('');
  if (ended) {
    setAir('ended');
  } else {
    showError(t('end_failed'));
    setAir(studio.status);
  }
}

/** After a reload: resume if this tab was publishing and the show is still on. */
function resumeAfterReload() {
  if (!remembered()) return;
  if (studio.status === 'live' || studio.status === 'reconnecting') resume();
  else if (studio.status === 'ended') forget();
}

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
  initDevices().then(resumeAfterReload);

  const rt = connectShow({ show: page.show_id, token: page.token });
  import('./selling.js').then((m) => m.initSelling(rt)); // LIVE SELLING: flash deals, auctions (issue 17)
  import('./vouchers.js').then((m) => m.initVouchers(rt)); // VOUCHERS: pinned and claimed (issue 17.3)
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
    clearTimeout(studio.lostCheck);
    if (status === 'ended') {
      // Ended (here, by an admin, or the grace ran out): stop trying.
      if (studio.resuming) studio.resuming.abort();
      if (studio.wake) studio.wake.abort();
      dropPublisher();
      forget();
      showError('');
    }
    setAir(status);
    // The relay lost this page's publisher while our side still looks connected (it
    // saw no media, say). That event can also be a late one from before a resume that
    // already worked, which "live" follows at once: so publish again only if the show
    // is still reconnecting a few seconds later.
    if (status === 'reconnecting' && studio.publisher) {
      studio.lostCheck = setTimeout(() => {
        if (studio.status === 'reconnecting' && studio.publisher) resume();
      }, LOST_STATUS_GRACE_MS);
    }
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
