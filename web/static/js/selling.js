// Live selling on the show's socket: the studio's deal, auction and giveaway controls
// and the watch page's widget (countdown, units left, current price, leader, clock, Bid
// / Set max; a giveaway's Enter, its entries, the winner and the draw's proof). The
// server decides every time limit; the clock shown here is only the server's
// end minus the server's now (sent with each state), counted down locally.
// Text comes from #selling-text (web/templates/_selling.html) and goes in with
// textContent only.
import { $, ackError, formatMoney, page, say as sayIn, toMinor } from './page.js';

const node = document.getElementById('selling-text');
const text = node ? JSON.parse(node.textContent || '{}') : {};
const say = (key, vars = {}) =>
  (text[key] || key).replace(/\{(\w+)\}/g, (whole, name) => (name in vars ? String(vars[name]) : whole));

let offset = 0; // server clock − this clock, in ms, from the last state that carried it
let deal = null;
let lot = null;
let giveaway = null;
let me = null;

const serverNow = () => Date.now() + offset;
// The studio shows the widget without its Buy and Bid controls (the seller cannot bid).
const buyer = () => Boolean(me) && !$('selling-studio');

function clock(ms) {
  const s = Math.max(0, Math.ceil(ms / 1000));
  const m = Math.floor(s / 60);
  return `${m}:${String(s % 60).padStart(2, '0')}`;
}

function syncClock(state) {
  if (Number.isFinite(state.server_ms)) offset = state.server_ms - Date.now();
}

function refusal(reply) {
  switch (reply.error) {
    case 'bid_too_low': return say('bid_too_low', { price: lot ? formatMoney(reply.next_price, lot.currency) : '' });
    case 'deal_limit':
    case 'deal_sold_out':
    case 'deal_not_open':
    case 'seller_cannot_bid':
    case 'already_leading':
    case 'already_entered':
    case 'not_eligible':
    case 'host_cannot_enter':
      return say(reply.error);
    case 'deal_ended':
    case 'auction_ended':
    case 'giveaway_ended':
      return say('over');
    default: return ackError(reply);
  }
}

function status(message) {
  $('selling-status').textContent = message;
}

// States come from every node, each node's own in order: a newer one is never
// replaced by an older one (an ended deal or lot stays ended; a lot's `bids` only grows).
const newer = (old, state) =>
  !old || old.id !== state.id || (old.status === 'open' && (state.status !== 'open' || !('bids' in state) ||
    state.bids >= old.bids));

function showDeal(state) {
  if (!$('deal-widget') || !newer(deal, state)) return;
  syncClock(state);
  deal = { ...state, opens_ms: Date.parse(state.opens_at), ends_ms: Date.parse(state.ends_at) };
  $('deal-widget').hidden = false;
  $('deal-product').textContent = state.product_name;
  $('deal-price').textContent = formatMoney(state.price, state.currency);
  $('deal-left').textContent = say('left', { left: state.left, units: state.units });
  $('deal-limit').textContent = say('limit', { limit: state.per_buyer_limit });
  if ($('deal-end')) $('deal-end').hidden = state.status !== 'open';
  tick();
}

function showLot(state) {
  if (!$('auction-widget') || !newer(lot, state)) return;
  syncClock(state);
  lot = state;
  $('auction-widget').hidden = false;
  $('auction-product').textContent = state.product_name;
  $('auction-price').textContent = formatMoney(state.price, state.currency);
  const leader = state.leader;
  $('auction-leader').textContent = leader ? (me && leader.id === me.id ? say('you_lead') : leader.name) : say('no_bids');
  $('auction-bid').textContent = say('bid', { price: formatMoney(state.next_price, state.currency) });
  if (state.status !== 'open') {
    $('auction-clock').textContent = state.winner
      ? say('sold', { name: state.winner.name, price: formatMoney(state.price, state.currency) })
      : say('unsold');
  }
  tick();
}

// A giveaway: its state while it takes entries, then its one result (never undone).
function showGiveaway(state) {
  if (!$('giveaway-widget')) return;
  if (giveaway && giveaway.id === state.id && giveaway.status !== 'open' && state.status === 'open') return;
  syncClock(state);
  giveaway = giveaway && giveaway.id === state.id ? { ...giveaway, ...state } : { ...state };
  $('giveaway-widget').hidden = false;
  $('giveaway-product').textContent = state.product_name;
  $('giveaway-only').textContent = state.only === 'buyers' ? say('giveaway_only_buyers')
    : state.only === 'coview' ? say('giveaway_only_coview') : '';
  $('giveaway-entries').textContent = say('giveaway_entries', { count: state.entries });
  $('giveaway-seed-hash').textContent = state.seed_hash;
  if (state.status !== 'open') {
    $('giveaway-clock').textContent = '';
    $('giveaway-seed').textContent = state.seed || '';
    $('giveaway-entries-hash').textContent = state.entries_hash || '';
    $('giveaway-index').textContent = state.winner_index ?? '';
    const won = state.winner && me && state.winner.id === me.id;
    $('giveaway-winner').textContent = state.winner
      ? (won ? say('giveaway_you_won') : say('giveaway_won', { name: state.winner.name }))
      : say(state.status === 'unfulfilled' ? 'giveaway_unfulfilled' : 'giveaway_no_entries');
  } else {
    $('giveaway-winner').textContent = '';
  }
  tick();
}

function tick() {
  const now = serverNow();
  if (giveaway && $('giveaway-clock') && giveaway.status === 'open') {
    const left = giveaway.closes_ms - now;
    $('giveaway-clock').textContent = left > 0 ? say('giveaway_closes_in', { time: clock(left) })
      : say('giveaway_drawing');
    if ($('giveaway-enter')) $('giveaway-enter').hidden = !(buyer() && left > 0);
  } else if ($('giveaway-enter')) {
    $('giveaway-enter').hidden = true;
  }
  if (deal && $('deal-clock')) {
    const open = deal.status === 'open' && now < deal.ends_ms && deal.left > 0;
    if (!open) $('deal-clock').textContent = say('ended');
    else if (now < deal.opens_ms) $('deal-clock').textContent = say('opens_in', { time: clock(deal.opens_ms - now) });
    else $('deal-clock').textContent = say('ends_in', { time: clock(deal.ends_ms - now) });
    if ($('deal-buy')) $('deal-buy').hidden = !(open && now >= deal.opens_ms && buyer());
  }
  if (lot && $('auction-clock') && lot.status === 'open') {
    $('auction-clock').textContent = say('ends_in', { time: clock(lot.ends_ms - now) });
    $('auction-bidding').hidden = !buyer() || now >= lot.ends_ms;
  } else if (lot && $('auction-bidding')) {
    $('auction-bidding').hidden = true;
  }
}

function fields(form) {
  return Object.fromEntries(new FormData(form).entries());
}

function currencyOf(form) {
  const option = form.elements.product_id.selectedOptions[0];
  return option ? option.dataset.currency : 'USD';
}

function wireStudio(rt) {
  const dealForm = $('deal-start');
  const lotForm = $('auction-start');
  if (!dealForm || !lotForm) return;
  const whole = (value) => Number.parseInt(value, 10);
  dealForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    const f = fields(dealForm);
    const reply = await rt.request('deal_start', {
      product_id: whole(f.product_id), price: toMinor(f.price, currencyOf(dealForm)), units: whole(f.units),
      per_buyer_limit: whole(f.per_buyer_limit), seconds: whole(f.seconds), countdown: whole(f.countdown || '0'),
    });
    sayIn(dealForm.querySelector('.form-error'), reply.ok ? say('started') : refusal(reply), reply.ok);
  });
  $('deal-end').addEventListener('click', async () => {
    if (deal) await rt.request('deal_end', { deal_id: deal.id });
  });
  lotForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    const f = fields(lotForm);
    const reply = await rt.request('auction_start', {
      product_id: whole(f.product_id), start_price: toMinor(f.start_price, currencyOf(lotForm)),
      seconds: whole(f.seconds), mode: f.mode, extend_seconds: whole(f.extend_seconds || '10'),
    });
    sayIn(lotForm.querySelector('.form-error'), reply.ok ? say('started') : refusal(reply), reply.ok);
  });
  const giveawayForm = $('giveaway-open');
  if (!giveawayForm) return;
  giveawayForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    const f = fields(giveawayForm);
    const body = { product_id: whole(f.product_id), seconds: whole(f.seconds), only: f.only };
    if (f.only === 'coview') body.coview = (f.coview || '').trim();
    const reply = await rt.request('giveaway_open', body);
    sayIn(giveawayForm.querySelector('.form-error'), reply.ok ? say('started') : refusal(reply), reply.ok);
  });
}

function wireViewer(rt) {
  $('deal-buy').addEventListener('submit', async (event) => {
    event.preventDefault();
    if (!deal) return;
    const quantity = Number.parseInt($('deal-buy').elements.quantity.value, 10) || 1;
    // One key per tap: a retry of this tap after a lost answer returns the same order.
    const key = `tap-${crypto.randomUUID ? crypto.randomUUID() : `${Date.now()}-${Math.random()}`}`;
    let reply = await rt.request('deal_buy', { deal_id: deal.id, quantity, idempotency_key: key });
    if (!reply.ok && (reply.error === 'timeout' || reply.error === 'unavailable')) {
      reply = await rt.request('deal_buy', { deal_id: deal.id, quantity, idempotency_key: key });
    }
    status(reply.ok ? say('ordered', { total: formatMoney(reply.order.total, reply.order.currency) }) : refusal(reply));
  });
  $('giveaway-enter').addEventListener('click', async () => {
    if (!giveaway) return;
    const reply = await rt.request('giveaway_enter', { giveaway_id: giveaway.id });
    status(reply.ok ? say('giveaway_entered') : refusal(reply));
  });
  $('auction-bid').addEventListener('click', async () => {
    if (!lot) return;
    const reply = await rt.request('bid', { auction_id: lot.id, amount: lot.next_price });
    status(reply.ok ? '' : refusal(reply));
  });
  $('auction-max').addEventListener('submit', async (event) => {
    event.preventDefault();
    if (!lot) return;
    const max = toMinor($('auction-max').elements.max.value, lot.currency);
    const reply = await rt.request('set_max', { auction_id: lot.id, max });
    status(reply.ok ? '' : refusal(reply));
  });
}

/** Wire live selling to the show's realtime connection (web/static/js/realtime.js). */
export function initSelling(rt) {
  if (!$('selling-live')) return;
  me = page.user || null;
  const catchUp = async () => {
    const reply = await rt.request('selling_state', {});
    if (!reply.ok) return;
    for (const d of reply.deals) showDeal(d);
    for (const a of reply.auctions) showLot(a);
    for (const g of reply.giveaways || []) showGiveaway(g);
  };
  // Each (re)join: the running deal and lot, whatever was missed while away.
  rt.on('state', (state) => {
    me = state.me || null;
    catchUp();
  });
  if (rt.socket.connected) catchUp(); // this module may load after the first state
  rt.on('deal_state', showDeal);
  rt.on('auction_state', showLot);
  rt.on('giveaway_state', showGiveaway);
  rt.on('giveaway_result', showGiveaway);
  rt.on('order', (order) => {
    if (lot && order.product_id === lot.product_id && lot.status !== 'open' && order.unit_price === lot.price) {
      status(say('ordered', { total: formatMoney(order.total, order.currency) }));
    }
  });
  wireStudio(rt);
  wireViewer(rt);
  setInterval(tick, 250);
}
