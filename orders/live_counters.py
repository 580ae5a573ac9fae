"""The hot state of live selling: a flash deal's units left and per-buyer counts, an
auction's price, leader, maxima and clock.

Every buy and every bid is judged here in one atomic step, so two buyers on two nodes
can never both take the last unit and two bidders can never both lead. With Redis
(several processes) each step is one Lua script, one round trip, and the clock is
Redis's own (`TIME`): nodes whose clocks disagree still agree on when a lot ends.
Without Redis (one process) `MemoryCounters` applies the same rules to dictionaries;
nothing awaits inside a step, so the event loop makes each one atomic.

The database (orders/flash_deals.py, orders/auctions.py) is the record: deal and lot
rows, the bid ledger, the final order. What lives here is what must be decided in
well under a millisecond by whichever node a buyer or bidder is on.

The proxy-bidding rule (as eBay and Whatnot apply it) is kept incrementally — the
leader's maximum and the highest maximum of the others — so the current price is
always what `orders.auctions.hammer_price` gives for the maxima so far: the
second-highest maximum plus one step, capped at the leader's maximum; the start price
while there is a single bidder. Equal maxima: the earlier one leads.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import redis.asyncio as aioredis

# Verdicts (shared by both implementations and the Lua scripts' first return value).
OK = "ok"
UNKNOWN = "unknown"
ENDED = "ended"
NOT_OPEN = "not_open"
SOLD_OUT = "sold_out"
OVER_LIMIT = "over_limit"
INSUFFICIENT = "insufficient"
MUTED = "muted"
SELLER = "seller"
TOO_LOW = "too_low"
ALREADY_LEADING = "already_leading"
CLOSED = "closed"  # this call closed it
ALREADY = "already"  # closed before
NOT_YET = "not_yet"

_CODES = [OK, UNKNOWN, ENDED, NOT_OPEN, SOLD_OUT, OVER_LIMIT, INSUFFICIENT, MUTED, SELLER, TOO_LOW,
          ALREADY_LEADING, CLOSED, ALREADY, NOT_YET]

Steps = Sequence[tuple[int, int]]  # [(from price, step), …], rising, the first from 0


def step_at(steps: Steps, price: int) -> int:
    """The bid step that applies at `price`: that of the last band starting at or below it."""
    step = steps[0][1]
    for start, size in steps:
        if price >= start:
            step = size
    return step


@dataclass(frozen=True, slots=True)
class Take:
    verdict: str
    left: int  # units left after this take
    bought: int  # the buyer's units after this take
    at_ms: int


@dataclass(frozen=True, slots=True)
class DealClosing:
    verdict: str  # CLOSED, ALREADY, NOT_YET or UNKNOWN
    left: int


@dataclass(frozen=True, slots=True)
class Judged:
    """A bid as the live state judged it, and the state after it."""

    verdict: str
    seq: int  # 0 when the lot is unknown
    at_ms: int
    amount: int  # the maximum the bid stood for (a one-tap bid: the next step's price)
    price: int
    leader: int | None
    leader_name: str
    ends_ms: int
    bids: int  # accepted bids so far


@dataclass(frozen=True, slots=True)
class AuctionSnapshot:
    price: int
    leader: int | None
    leader_name: str
    ends_ms: int
    bids: int
    closed: bool
    leader_max: int  # never shown to clients


@dataclass(frozen=True, slots=True)
class AuctionClosing:
    verdict: str  # CLOSED, ALREADY, NOT_YET or UNKNOWN
    state: AuctionSnapshot | None


class LiveCounters(Protocol):
    async def deal_open(self, deal_id: int, units: int, limit: int, opens_ms: int, ends_ms: int) -> None: ...

    async def deal_take(self, deal_id: int, buyer_id: int, quantity: int) -> Take:
        """Take `quantity` units for the buyer if the deal is open, has them and the
        buyer stays within the limit; otherwise nothing changes."""

    async def deal_give_back(self, deal_id: int, buyer_id: int, quantity: int) -> int:
        """Undo a take whose order was refused; units left after."""

    async def deal_close(self, deal_id: int, force: bool = False) -> DealClosing:
        """Close the deal if its time is up, it is sold out, or `force`; CLOSED only once."""

    async def deal_left(self, deal_id: int) -> int | None: ...

    async def auction_open(self, auction_id: int, start_price: int, steps: Steps, opens_ms: int, ends_ms: int,
                           extend_ms: int, seller_id: int) -> None: ...

    async def auction_bid(self, auction_id: int, bidder_id: int, name: str, max_amount: int,
                          guard_key: str | None = None) -> Judged:
        """Judge a bid whose maximum is `max_amount` (0: one tap, the next step)."""

    async def auction_close(self, auction_id: int) -> AuctionClosing:
        """Close the lot if its clock has run out; CLOSED to exactly one caller."""

    async def auction_state(self, auction_id: int) -> AuctionSnapshot | None: ...

    async def now_ms(self) -> int: ...


# --- one process ----------------------------------------------------------------------

@dataclass
class _Deal:
    left: int
    limit: int
    opens_ms: int
    ends_ms: int
    closed: bool = False
    bought: dict[int, int] = field(default_factory=dict)


@dataclass
class _Lot:
    start: int
    steps: list[tuple[int, int]]
    opens_ms: int
    ends_ms: int
    extend_ms: int
    seller: int
    price: int = 0
    leader: int | None = None
    leader_name: str = ""
    leader_max: int = 0
    second: int = -1  # the highest maximum of the others (-1: a single bidder so far)
    closed: bool = False
    seq: int = 0
    bids: int = 0


def judge(lot: _Lot, bidder: int, name: str, max_amount: int, now: int) -> tuple[str, int]:
    """Apply one bid to `lot` (in place when accepted): (verdict, the bid's maximum).
    The Lua script `_BID` is this function, line by line."""
    if lot.closed or now >= lot.ends_ms:
        return ENDED, max_amount
    if now < lot.opens_ms:
        return NOT_OPEN, max_amount
    if bidder == lot.seller:
        return SELLER, max_amount
    following = lot.start if lot.leader is None else lot.price + step_at(lot.steps, lot.price)
    m = following if max_amount == 0 else max_amount
    if lot.leader == bidder:
        if m <= lot.leader_max:
            return ALREADY_LEADING, m
        lot.leader_max = m
    else:
        if m < following:
            return TOO_LOW, m
        if lot.leader is None:
            lot.leader, lot.leader_name, lot.leader_max = bidder, name, m
        elif m > lot.leader_max:
            lot.second = lot.leader_max
            lot.leader, lot.leader_name, lot.leader_max = bidder, name, m
        else:
            lot.second = m  # above the price, so above every other maximum
    if lot.second >= 0:
        # Also when the leader raises a maximum the price was capped at.
        lot.price = min(lot.leader_max, lot.second + step_at(lot.steps, lot.second))
    lot.bids += 1
    if lot.extend_ms > 0 and lot.ends_ms - now < lot.extend_ms:
        lot.ends_ms = now + lot.extend_ms
    return OK, m


class MemoryCounters:
    """One process: the same rules on dictionaries (no await inside a step)."""

    def __init__(self, clock: Callable[[], float] = time.time,
                 muted: Callable[[str], bool] | None = None) -> None:
        self._clock = clock
        self._muted = muted or (lambda key: False)
        self._deals: dict[int, _Deal] = {}
        self._lots: dict[int, _Lot] = {}

    def _now(self) -> int:
        return int(self._clock() * 1000)

    async def now_ms(self) -> int:
        return self._now()

    async def deal_open(self, deal_id: int, units: int, limit: int, opens_ms: int, ends_ms: int) -> None:
        self._deals[deal_id] = _Deal(units, limit, opens_ms, ends_ms)

    async def deal_take(self, deal_id: int, buyer_id: int, quantity: int) -> Take:
        now = self._now()
        deal = self._deals.get(deal_id)
        if deal is None:
            return Take(UNKNOWN, 0, 0, now)
        have = deal.bought.get(buyer_id, 0)
        verdict = _deal_verdict(deal.closed, now, deal.opens_ms, deal.ends_ms, deal.left, have, quantity, deal.limit)
        if verdict != OK:
            return Take(verdict, deal.left, have, now)
        deal.left -= quantity
        deal.bought[buyer_id] = have + quantity
        return Take(OK, deal.left, have + quantity, now)

    async def deal_give_back(self, deal_id: int, buyer_id: int, quantity: int) -> int:
        deal = self._deals.get(deal_id)
        if deal is None:
            return 0
        deal.left += quantity
        deal.bought[buyer_id] = max(0, deal.bought.get(buyer_id, 0) - quantity)
        return deal.left

    async def deal_close(self, deal_id: int, force: bool = False) -> DealClosing:
        deal = self._deals.get(deal_id)
        if deal is None:
            return DealClosing(UNKNOWN, 0)
        if deal.closed:
            return DealClosing(ALREADY, deal.left)
        if not force and deal.left > 0 and self._now() < deal.ends_ms:
            return DealClosing(NOT_YET, deal.left)
        deal.closed = True
        return DealClosing(CLOSED, deal.left)

    async def deal_left(self, deal_id: int) -> int | None:
        deal = self._deals.get(deal_id)
        return None if deal is None else deal.left

    async def auction_open(self, auction_id: int, start_price: int, steps: Steps, opens_ms: int, ends_ms: int,
                           extend_ms: int, seller_id: int) -> None:
        self._lots[auction_id] = _Lot(start_price, [tuple(s) for s in steps], opens_ms, ends_ms, extend_ms,
                                      seller_id, price=start_price)

    async def auction_bid(self, auction_id: int, bidder_id: int, name: str, max_amount: int,
                          guard_key: str | None = None) -> Judged:
        now = self._now()
        lot = self._lots.get(auction_id)
        if lot is None:
            return Judged(UNKNOWN, 0, now, max_amount, 0, None, "", 0, 0)
        lot.seq += 1
        if guard_key is not None and self._muted(guard_key):
            verdict, m = MUTED, max_amount
        else:
            verdict, m = judge(lot, bidder_id, name, max_amount, now)
        return Judged(verdict, lot.seq, now, m, lot.price, lot.leader, lot.leader_name, lot.ends_ms, lot.bids)

    async def auction_close(self, auction_id: int) -> AuctionClosing:
        lot = self._lots.get(auction_id)
        if lot is None:
            return AuctionClosing(UNKNOWN, None)
        if lot.closed:
            return AuctionClosing(ALREADY, self._snapshot(lot))
        if self._now() < lot.ends_ms:
            return AuctionClosing(NOT_YET, self._snapshot(lot))
        lot.closed = True
        return AuctionClosing(CLOSED, self._snapshot(lot))

    async def auction_state(self, auction_id: int) -> AuctionSnapshot | None:
        lot = self._lots.get(auction_id)
        return None if lot is None else self._snapshot(lot)

    @staticmethod
    def _snapshot(lot: _Lot) -> AuctionSnapshot:
        return AuctionSnapshot(lot.price, lot.leader, lot.leader_name, lot.ends_ms, lot.bids, lot.closed,
                               lot.leader_max)


def _deal_verdict(closed: bool, now: int, opens: int, ends: int, left: int, have: int, quantity: int,
                  limit: int) -> str:
    if closed or now >= ends:
        return ENDED
    if now < opens:
        return NOT_OPEN
    if left <= 0:
        return SOLD_OUT
    if have + quantity > limit:
        return OVER_LIMIT
    if quantity > left:
        return INSUFFICIENT
    return OK


# --- Redis: one Lua script per step ----------------------------------------------------

_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

# KEYS: deal hash, buyers hash. ARGV: buyer, quantity.
# Returns {verdict index, left, bought, now}.
_TAKE = _NOW + """
local d = redis.call('HMGET', KEYS[1], 'left', 'limit', 'opens', 'ends', 'closed')
if not d[1] then return {1, 0, 0, now} end
local left, limit = tonumber(d[1]), tonumber(d[2])
local q = tonumber(ARGV[2])
local have = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0')
if d[5] == '1' or now >= tonumber(d[4]) then return {2, left, have, now} end
if now < tonumber(d[3]) then return {3, left, have, now} end
if left <= 0 then return {4, left, have, now} end
if have + q > limit then return {5, left, have, now} end
if q > left then return {6, left, have, now} end
left = redis.call('HINCRBY', KEYS[1], 'left', -q)
have = redis.call('HINCRBY', KEYS[2], ARGV[1], q)
return {0, left, have, now}
"""

_GIVE_BACK = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local have = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0')
redis.call('HSET', KEYS[2], ARGV[1], math.max(0, have - tonumber(ARGV[2])))
return redis.call('HINCRBY', KEYS[1], 'left', tonumber(ARGV[2]))
"""

# ARGV: force (0/1). Returns {verdict index, left}.
_DEAL_CLOSE = _NOW + """
local d = redis.call('HMGET', KEYS[1], 'left', 'ends', 'closed')
if not d[1] then return {1, 0} end
if d[3] == '1' then return {12, tonumber(d[1])} end
if ARGV[1] ~= '1' and tonumber(d[1]) > 0 and now < tonumber(d[2]) then return {13, tonumber(d[1])} end
redis.call('HSET', KEYS[1], 'closed', '1')
return {11, tonumber(d[1])}
"""

_STEP = """
local function step_at(steps, p)
  local s = steps[2]
  for i = 1, #steps, 2 do
    if p >= steps[i] then s = steps[i + 1] end
  end
  return s
end
"""

# KEYS: lot hash, mute key (may be absent). ARGV: bidder, name, max (0: one tap).
# Returns {verdict index, seq, now, amount, price, leader, leader name, ends, bids}.
# This is `judge` above, line by line.
_BID = _NOW + _STEP + """
local a = redis.call('HMGET', KEYS[1], 'start', 'price', 'leader', 'lmax', 'ends', 'ext', 'closed', 'seller',
                      'steps', 'opens', 'name', 'bids', 'second')
if not a[1] then return {1, 0, now, tonumber(ARGV[3]), 0, '', '', 0, 0} end
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
local start, price, leader, lmax = tonumber(a[1]), tonumber(a[2]), a[3], tonumber(a[4])
local ends, ext, bids = tonumber(a[5]), tonumber(a[6]), tonumber(a[12])
local name = a[11]
local second = tonumber(a[13])
local bidder = ARGV[1]
local m = tonumber(ARGV[3])
local function answer(v) return {v, seq, now, m, price, leader, name, ends, bids} end
if KEYS[2] and redis.call('PTTL', KEYS[2]) > 0 then return answer(7) end
if a[7] == '1' or now >= ends then return answer(2) end
if now < tonumber(a[10]) then return answer(3) end
if bidder == a[8] then return answer(8) end
local steps = {}
for v in string.gmatch(a[9], '[^,]+') do steps[#steps + 1] = tonumber(v) end
local following = start
if leader ~= '' then following = price + step_at(steps, price) end
if m == 0 then m = following end
if leader == bidder then
  if m <= lmax then return answer(10) end
  lmax = m
else
  if m < following then return answer(9) end
  if leader == '' then
    leader, name, lmax = bidder, ARGV[2], m
  elseif m > lmax then
    second = lmax
    leader, name, lmax = bidder, ARGV[2], m
  else
    second = m
  end
end
if second >= 0 then price = math.min(lmax, second + step_at(steps, second)) end
bids = bids + 1
if ext > 0 and ends - now < ext then ends = now + ext end
redis.call('HSET', KEYS[1], 'price', price, 'leader', leader, 'lmax', lmax, 'name', name, 'ends', ends, 'bids', bids,
           'second', second)
return answer(0)
"""

_STATE_FIELDS = ("price", "leader", "name", "ends", "bids", "closed", "lmax")

# Returns {verdict index, price, leader, name, ends, bids, closed, lmax}.
_AUCTION_CLOSE = _NOW + """
local a = redis.call('HMGET', KEYS[1], 'price', 'leader', 'name', 'ends', 'bids', 'closed', 'lmax')
if not a[1] then return {1} end
local v = 11
if a[6] == '1' then v = 12
elseif now < tonumber(a[4]) then v = 13
else redis.call('HSET', KEYS[1], 'closed', '1'); a[6] = '1' end
return {v, a[1], a[2], a[3], a[4], a[5], a[6], a[7]}
"""

KEEP_SECONDS = 24 * 3600  # the live state outlives its deal or lot by a day, then Redis drops it


def _text(value: bytes | str | int) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisCounters:
    """Across processes: the same rules in Lua, on Redis's clock."""

    # Scripts in flight at once from this process. redis-py 8's pool holds 100
    # connections and raises MaxConnectionsError past them; a burst of bids queues here
    # instead (a script takes well under a millisecond, so 32 keep Redis busy).
    IN_FLIGHT = 32

    def __init__(self, client: aioredis.Redis, prefix: str = "lm:sell") -> None:
        self._client = client
        self._prefix = prefix
        self._slots = asyncio.Semaphore(self.IN_FLIGHT)
        self._take = client.register_script(_TAKE)
        self._give_back = client.register_script(_GIVE_BACK)
        self._deal_close = client.register_script(_DEAL_CLOSE)
        self._bid = client.register_script(_BID)
        self._auction_close = client.register_script(_AUCTION_CLOSE)

    def _deal_keys(self, deal_id: int) -> list[str]:
        base = f"{self._prefix}:deal:{deal_id}"
        return [base, f"{base}:buyers"]

    def _lot_key(self, auction_id: int) -> str:
        return f"{self._prefix}:lot:{auction_id}"

    async def now_ms(self) -> int:
        seconds, micros = await self._client.time()
        return int(seconds) * 1000 + int(micros) // 1000

    async def deal_open(self, deal_id: int, units: int, limit: int, opens_ms: int, ends_ms: int) -> None:
        deal, buyers = self._deal_keys(deal_id)
        ttl = max(1, (ends_ms - int(time.time() * 1000)) // 1000) + KEEP_SECONDS
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.delete(deal, buyers)
            pipe.hset(deal, mapping={"left": units, "limit": limit, "opens": opens_ms, "ends": ends_ms, "closed": 0})
            pipe.expire(deal, ttl)
            await pipe.execute()

    async def deal_take(self, deal_id: int, buyer_id: int, quantity: int) -> Take:
        keys = self._deal_keys(deal_id)
        async with self._slots:
            v, left, have, now = await self._take(keys=keys, args=[buyer_id, quantity])
        if int(v) == 0 and int(have) == quantity:  # the buyer's first take: let the hash expire with the deal
            await self._client.expire(keys[1], KEEP_SECONDS)
        return Take(_CODES[int(v)], int(left), int(have), int(now))

    async def deal_give_back(self, deal_id: int, buyer_id: int, quantity: int) -> int:
        async with self._slots:
            return int(await self._give_back(keys=self._deal_keys(deal_id), args=[buyer_id, quantity]))

    async def deal_close(self, deal_id: int, force: bool = False) -> DealClosing:
        v, left = await self._deal_close(keys=self._deal_keys(deal_id)[:1], args=[1 if force else 0])
        return DealClosing(_CODES[int(v)], int(left))

    async def deal_left(self, deal_id: int) -> int | None:
        left = await self._client.hget(self._deal_keys(deal_id)[0], "left")
        return None if left is None else int(left)

    async def auction_open(self, auction_id: int, start_price: int, steps: Steps, opens_ms: int, ends_ms: int,
                           extend_ms: int, seller_id: int) -> None:
        key = self._lot_key(auction_id)
        flat = ",".join(f"{start},{size}" for start, size in steps)
        ttl = max(1, (ends_ms - int(time.time() * 1000)) // 1000) + KEEP_SECONDS
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.delete(key)
            pipe.hset(key, mapping={"start": start_price, "price": start_price, "leader": "", "lmax": 0,
                                    "ends": ends_ms, "ext": extend_ms, "closed": 0, "seller": seller_id,
                                    "steps": flat, "opens": opens_ms, "name": "", "bids": 0, "seq": 0,
                                    "second": -1})
            pipe.expire(key, ttl)
            await pipe.execute()

    async def auction_bid(self, auction_id: int, bidder_id: int, name: str, max_amount: int,
                          guard_key: str | None = None) -> Judged:
        keys = [self._lot_key(auction_id)] + ([guard_key] if guard_key else [])
        async with self._slots:
            v, seq, now, m, price, leader, lname, ends, bids = await self._bid(
                keys=keys, args=[bidder_id, name, max_amount])
        leader_text = _text(leader)
        return Judged(_CODES[int(v)], int(seq), int(now), int(m), int(price),
                      int(leader_text) if leader_text else None, _text(lname), int(ends), int(bids))

    async def auction_close(self, auction_id: int) -> AuctionClosing:
        reply = await self._auction_close(keys=[self._lot_key(auction_id)])
        verdict = _CODES[int(reply[0])]
        if verdict == UNKNOWN:
            return AuctionClosing(UNKNOWN, None)
        return AuctionClosing(verdict, self._snapshot(reply[1:]))

    async def auction_state(self, auction_id: int) -> AuctionSnapshot | None:
        values = await self._client.hmget(self._lot_key(auction_id), _STATE_FIELDS)
        if values[0] is None:
            return None
        return self._snapshot(values)

    @staticmethod
    def _snapshot(values: Sequence) -> AuctionSnapshot:
        price, leader, name, ends, bids, closed, lmax = (_text(v) for v in values)
        return AuctionSnapshot(int(price), int(leader) if leader else None, name, int(ends), int(bids),
                               closed == "1", int(lmax))
