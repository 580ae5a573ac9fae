"""Which simulcast layer one viewer should receive, decided from that viewer's own feedback.

Pure logic: no I/O, no asyncio, no aiortc. Every input carries its time (seconds on any
monotonic clock), so a test can replay a trace of minutes in milliseconds. The viewer's
down track feeds REMB, RR loss, NACKs and packet counts; the hub's housekeeping tick feeds
the shared per-layer send rates and asks `target()`; the caller switches at the target
layer's next keyframe and reports `on_switched()`.

The shape is the one LiveKit and mediasoup share: **step down fast, step up slowly.** Too
much video freezes the picture at once; too little only makes it softer for a while.

- Down, at once, when the viewer's REMB no longer covers the layer (mediasoup's "virtual"
  budget, `SimulcastConsumer.cpp`; LiveKit's `ExpectedUsageThreshold` 0.95), when REMB
  drops sharply (mediasoup redistributes at once below 75 % of the previous value), or on
  loss: RR loss > 10 % (GCC's loss thresholds) or a NACK ratio > 8 % over 2-3 s (LiveKit
  `nack_tracker.go`).
- Up, one layer, only after a quiet spell: 10 s after a bandwidth downgrade (mediasoup
  `BweDowngradeConservativeMs`), doubled after each failed attempt up to 2 min (LiveKit's
  probe regulator), 4 s on the current layer, clean RRs, and the next layer active for 2 s
  (mediasoup `StreamMinActiveMs`).
- REMB cannot say on its own that the next layer fits: libwebrtc clamps it to 1.5 x the
  received rate + 10 kbit/s (`AimdRateControl::ClampBitrate`), so a viewer on 500 kbit/s
  never reports the ~1.9 Mbit/s the top layer needs. Hence a probe: `want_probe()` asks
  the caller for RTX padding so the clamp can reach the goal (LiveKit's goal: 120 % of
  the next layer). A caller that cannot probe is caught by the probe's timeout: if the
  REMB never rose above the clamp, no padding arrived, and the controller tries the layer
  itself ("probe with media", LiveKit's `ProbeModeMedia`), reverting if REMB falls or loss
  appears.
- Loss that does not grow with the rate is not congestion: a viewer on Wi-Fi or a lossy
  mobile link loses 5 % on every layer, and NACKs repair it. The controller keeps each
  layer's loss as measured while the viewer was on it, and judges a layer by the loss
  *above* what a lower layer showed (the floor, at most 10 %); a viewer that has been on
  no lower layer is judged by the plain figures. Deciding to step up, a higher layer
  that lost no more than this one also counts as a floor.
- A viewer that sends no REMB (and every viewer for its first ~5 s, before Chromium's
  first REMB) is steered by loss alone. A step up is first a *padding probe*: the relay
  sends the viewer duplicates of packets it already has, from half its rate and doubling
  every 0.5 s up to the next layer's rate (x 1.2), and the layer is taken once that load
  has flowed for 1 s with loss < 5 % and NACKs < 4 % (LiveKit's probe-time NACK
  threshold) above the floor. A link that cannot carry it loses some packets for half a
  second, which NACKs repair, instead of freezing on a keyframe it cannot receive. A
  caller that sends no padding gets the old way: the next layer tried for real, kept
  after 3 s without loss.
- The viewer's cap (data saver) always wins, and a layer the publisher stopped sending is
  never chosen.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import inf

# -- the budget a REMB allows -------------------------------------------------------------
REMB_USABLE = 0.95  # LiveKit commits an estimate only below 95 % of expected usage
LAYER_FITS = 1.1  # a layer fits when 1.1 x its rate <= budget: room for keyframe bursts
BUDGET_SHORT = 0.9  # budget under 90 % of the layer's rate on 2 REMBs in a row: step down
SHARP_DROP = 0.75  # one REMB under 75 % of the previous: step down now (mediasoup)
REMB_NOISE = 0.97  # a REMB within 3 % of the previous is not a "decrease"
REMB_FRESH = 3.0  # older REMBs do not justify a step up
REMB_GONE = 6.0  # no REMB for this long: the viewer is steered by loss alone
REMB_CLAMP_FACTOR, REMB_CLAMP_EXTRA = 1.5, 10_000.0  # libwebrtc: REMB <= 1.5 x received + 10k

# -- loss (GCC's thresholds, as mediasoup applies them to the REMB budget) ----------------
LOSS_CLEAN = 0.02  # below: the budget may grow x1.08 and a step up may be tried
LOSS_HEAVY = 0.10  # above, on 2 RRs in a row: one layer down; budget x (1 - loss / 2)
RTCP_FRESH = 3.0  # Chromium sends a video RR every second; older loss figures are stale
NACK_HEAVY = 0.08  # LiveKit's congestion threshold ...
NACK_WINDOW_MIN, NACK_WINDOW_MAX = 2.0, 3.0  # ... over a 2-3 s window
SWITCH_GRACE = 0.5  # NACKs for the previous layer's losses still arrive an RTT after a switch
LOSS_FLOOR_MAX = 0.10  # random loss excused at most: beyond it repair cannot keep up anyway
LOSS_MEMORY = 0.3  # weight of a new RR in a layer's remembered loss (an EWMA)
RR_SETTLE = 1.0  # an RR within 1 s of a switch also covers the previous layer

# -- stepping up --------------------------------------------------------------------------
HOLD = 10.0  # no step up for 10 s after a bandwidth downgrade (mediasoup)
HOLD_MAX = 120.0  # the hold doubles after each failed attempt, up to 2 min (LiveKit)
ON_LAYER_MIN = 4.0  # settle on a layer before leaving it upward
LAYER_ACTIVE_MIN = 2.0  # switch only to a layer that has been sent for 2 s (mediasoup)
REMB_QUIET = 3.0  # no REMB decrease for 3 s before a step up
PROBE_GOAL = 1.2  # the REMB that proves a layer fits: 120 % of its rate, plus audio
PROBE_HEADROOM = 1.1  # pad so the REMB clamp sits 10 % above the goal, not just at it
PROBE_TIMEOUT = 15.0  # REMB climbs ~8 %/s, so 500k -> 1.9M takes ~10 s
ATTEMPT_REMB_FALL = 0.95  # during an attempt, REMB under 95 % of its best so far: failed
ATTEMPT_LOSS = 0.05
ATTEMPT_NACK = 0.04  # LiveKit's probe-time NACK threshold ...
ATTEMPT_NACK_MIN = 0.5  # ... judged after 0.5 s
MEDIA_TRIAL = 3.0  # without REMB, a layer tried for real is kept after 3 s without loss
FAILED, INCONCLUSIVE = 2.0, 1.5  # hold multipliers (LiveKit's probe regulator uses 1.5)

# -- the padding probe, for viewers without REMB ----------------------------------------------
PAD_START = 0.5  # padding starts at half the rate the viewer receives ...
PAD_GROWTH, PAD_STEP = 2.0, 0.5  # ... and doubles every 0.5 s up to what the goal needs
PAD_HOLD = 1.0  # the whole goal carried this long without loss: the next layer fits
PAD_UNSENT = 1.0  # no padding reported this long into a probe: the caller cannot pad


@dataclass
class _StepUp:
    """One attempt at the next layer up: a padding probe, or the layer itself (with media)."""

    layer: int
    from_layer: int
    goal_bps: float
    with_media: bool
    remb_guided: bool  # judged by REMB reaching the goal, not by 3 s without loss
    since: float | None  # when measuring began: the probe's start, or the switch
    first_remb: float = 0.0
    best_remb: float = 0.0
    nacked: int = 0
    sent: int = 0
    padded: float = 0.0  # bits of padding the caller reported sending
    full_since: float | None = None  # when the padding first reached the goal


class LayerController:
    """One viewer's simulcast layer: 0 is the lowest, ``layer_count - 1`` the highest."""

    def __init__(self, layer_count: int, *, initial: int | None = None, now: float) -> None:
        if layer_count < 1:
            raise ValueError("layer_count must be at least 1")
        self._count = layer_count
        # No REMB arrives in the first ~5 s: the middle layer (the lower of two) is the safe guess.
        start = (layer_count - 1) // 2 if initial is None else initial
        self._target = min(max(start, 0), layer_count - 1)
        self._cap = layer_count - 1
        self._current = self._target
        self._switched_at = now
        self._rates = [0.0] * layer_count
        self._audio = 0.0
        self._active_since: list[float | None] = [None] * layer_count
        self._remb: float | None = None
        self._remb_at = -inf
        self._remb_fell_at = -inf
        self._short_rembs = 0
        self._loss = 0.0
        self._losses: list[float] = []  # the last two RRs since the last switch or step down
        self._rr_at = -inf
        self._loss_on: list[float | None] = [None] * layer_count  # each layer's loss, remembered
        self._window_start = now
        self._window_nacked = 0
        self._window_sent = 0
        self._backoff = HOLD
        self._hold_until = -inf
        self._step_up: _StepUp | None = None
        self.reason = "start"  # what moved the target last, for logs

    # -- inputs ---------------------------------------------------------------------------

    def set_cap(self, cap: int | None) -> None:
        """The viewer's data-saver choice: the highest layer allowed (None: no cap).

        Lowering takes effect at once. Raising does not jump back up: the link has only been
        proven for what the viewer received, so the usual step-up rules climb from there
        (without a hold, since a cap is not a bandwidth downgrade).
        """
        self._cap = self._count - 1 if cap is None else min(max(cap, 0), self._count - 1)
        self._target = min(self._target, self._cap)
        if self._step_up is not None and self._step_up.layer > self._cap:
            self._step_up = None

    def on_layer_rates(
        self, rates_bps: list[float], audio_bps: float, active: list[bool], now: float
    ) -> None:
        """Each layer's measured send rate (shared by all viewers) and whether it is sent."""
        if len(rates_bps) != self._count or len(active) != self._count:
            raise ValueError(f"expected {self._count} layers")
        self._rates = list(rates_bps)
        self._audio = audio_bps
        for layer, on in enumerate(active):
            if not on:
                self._active_since[layer] = None
            elif self._active_since[layer] is None:
                self._active_since[layer] = now

    def on_remb(self, bitrate_bps: float, now: float) -> None:
        previous = self._remb if now - self._remb_at < REMB_GONE else None
        self._remb, self._remb_at = bitrate_bps, now
        if previous is not None and bitrate_bps < previous * REMB_NOISE:
            self._remb_fell_at = now

        attempt = self._step_up
        if attempt is not None and attempt.remb_guided and attempt.since is not None:
            if bitrate_bps < attempt.best_remb * ATTEMPT_REMB_FALL:
                self._give_up(FAILED, now, "REMB fell during the attempt")
            elif bitrate_bps >= attempt.goal_bps:
                self._succeed(attempt.layer)
            else:
                attempt.best_remb = max(attempt.best_remb, bitrate_bps)

        budget = self._budget(bitrate_bps)
        if previous is not None and bitrate_bps < previous * SHARP_DROP:
            self._step_down(self._highest_fitting(budget), now, "sharp REMB drop")
            return
        # While a layer is tried for real on a REMB viewer, the REMB is still clamped by
        # what the lower layer carried: it is expected to lag the layer's rate.
        attempt = self._step_up
        lagging_by_design = attempt is not None and attempt.with_media and attempt.remb_guided
        layer = self._layer(now)
        short = budget < BUDGET_SHORT * self._rates[layer] and not lagging_by_design
        self._short_rembs = self._short_rembs + 1 if short else 0
        if self._short_rembs >= 2:
            self._step_down(self._highest_fitting(budget), now, "REMB short of the layer")

    def on_receiver_report(self, fraction_lost: float, now: float) -> None:
        """Loss since the viewer's previous RR, 0..1."""
        self._loss, self._rr_at = fraction_lost, now
        self._losses = [*self._losses[-1:], fraction_lost]
        if now - self._switched_at >= RR_SETTLE:
            known = self._loss_on[self._current]
            self._loss_on[self._current] = (
                fraction_lost if known is None else known + LOSS_MEMORY * (fraction_lost - known)
            )
        attempt = self._step_up
        if (
            attempt is not None
            and attempt.since is not None
            and fraction_lost - self._floor_below(attempt.layer) > ATTEMPT_LOSS
        ):
            self._give_up(FAILED, now, "RR loss during the attempt")
        if len(self._losses) == 2 and min(self._losses) - self._floor_below(self._current) > LOSS_HEAVY:
            self._step_down(self._layer(now) - 1, now, "RR loss")

    def on_nack(self, nacked_packets: int, now: float) -> None:
        self._count_packets(nacked_packets, 0, now)

    def on_packets_sent(self, count: int, now: float) -> None:
        self._count_packets(0, count, now)

    def on_switched(self, layer: int, now: float) -> None:
        """The viewer now receives ``layer`` (the caller switched at its keyframe)."""
        self._current, self._switched_at = layer, now
        # Loss reported so far was the previous layer's.
        self._losses.clear()
        self._restart_nack_window(now + SWITCH_GRACE)
        attempt = self._step_up
        if attempt is not None and attempt.with_media and attempt.since is None:
            if layer == attempt.layer:
                attempt.since = now
                attempt.first_remb = attempt.best_remb = self._remb or 0.0

    # -- decisions ------------------------------------------------------------------------

    def target(self, now: float) -> int:
        """The layer to be on now; the caller switches at that layer's next keyframe."""
        self._advance(now)
        return self._layer(now)

    def want_probe(self, now: float) -> float:
        """Bits/s of padding to send now: for a REMB viewer, what lets the REMB clamp reach
        the probe's goal; otherwise the padding probe's ramp toward the goal."""
        self._advance(now)
        attempt = self._step_up
        if attempt is None or attempt.with_media:
            return 0.0
        received = self._rates[self._current] + self._audio
        if not attempt.remb_guided:
            assert attempt.since is not None
            needed = max(0.0, attempt.goal_bps - received)
            ramp = PAD_START * received * PAD_GROWTH ** ((now - attempt.since) // PAD_STEP)
            if ramp >= needed and attempt.full_since is None:
                attempt.full_since = now
            return min(needed, ramp)
        clamp_needed = attempt.goal_bps * PROBE_HEADROOM
        return max(0.0, (clamp_needed - REMB_CLAMP_EXTRA) / REMB_CLAMP_FACTOR - received)

    def on_padding_sent(self, bits: float, now: float) -> None:
        """The caller sent this much of the padding ``want_probe`` asked for."""
        if self._step_up is not None:
            self._step_up.padded += bits

    # -- internals ------------------------------------------------------------------------

    def _advance(self, now: float) -> None:
        """Time-driven decisions: an attempt's end, or the start of the next one."""
        attempt = self._step_up
        if attempt is None:
            self._maybe_step_up(now)
        elif attempt.since is None:
            return  # a layer tried with media, waiting for its keyframe
        elif not attempt.remb_guided:
            if attempt.with_media:
                if now - attempt.since >= MEDIA_TRIAL:
                    self._succeed(attempt.layer)
            elif not attempt.padded and now - attempt.since >= PAD_UNSENT:
                self._try_with_media(attempt, "trying the next layer (no padding)")
            elif attempt.full_since is not None and now - attempt.full_since >= PAD_HOLD:
                self._succeed(attempt.layer)
            elif now - attempt.since >= PROBE_TIMEOUT:
                self._give_up(INCONCLUSIVE, now, "probe inconclusive")
        elif now - attempt.since >= PROBE_TIMEOUT:
            # Padding lifts the REMB above both the clamp of the media alone and where the
            # probe started (an older, higher REMB stays put: the clamp never lowers it).
            unpadded = max(attempt.first_remb, self._remb_clamp(attempt.from_layer))
            if attempt.with_media or attempt.best_remb > PROBE_HEADROOM * unpadded:
                self._give_up(INCONCLUSIVE, now, "probe inconclusive")
            else:
                # The REMB did not move: the caller sent no padding, so the probe said nothing
                # about the link. Try the layer itself.
                self._try_with_media(attempt, "trying the next layer (no padding)")

    def _try_with_media(self, probe: _StepUp, reason: str) -> None:
        self._step_up = _StepUp(
            probe.layer, probe.from_layer, probe.goal_bps, with_media=True, remb_guided=probe.remb_guided, since=None
        )
        self._target = probe.layer
        self.reason = reason

    def _maybe_step_up(self, now: float) -> None:
        layer = self._layer(now)
        if layer != self._target or self._current != layer:
            return  # a switch is pending, or the wanted layer is not being sent
        if now < self._hold_until or now - self._switched_at < ON_LAYER_MIN:
            return
        if len(self._losses) < 2 or now - self._rr_at > RTCP_FRESH:
            return
        remb = self._remb if now - self._remb_at < REMB_GONE else None
        if remb is not None and (
            now - self._remb_at > REMB_FRESH or now - self._remb_fell_at < REMB_QUIET
        ):
            return
        following = [up for up in range(layer + 1, self._cap + 1) if self._steady(up, now)]
        if not following:
            return
        up = following[0]
        worst = max(self._losses)
        # Clean: no more loss than another layer showed. Moderate loss with nothing to
        # compare it to is tried once above (then it is known, and the hold grows if it
        # was congestion).
        clean = worst - self._floor_besides(layer) < LOSS_CLEAN or (
            self._loss_on[up] is None and worst < LOSS_FLOOR_MAX
        )
        if not clean:
            return
        goal = PROBE_GOAL * self._rates[up] + self._audio
        if remb is None:  # loss alone judges the probe: padding first
            self._step_up = _StepUp(up, layer, goal, with_media=False, remb_guided=False, since=now)
        elif remb >= goal:
            self._succeed(up)
        else:
            self._step_up = _StepUp(up, layer, goal, with_media=False, remb_guided=True, since=now)
            self._step_up.first_remb = self._step_up.best_remb = remb

    def _succeed(self, layer: int) -> None:
        self.reason = "step up proven"
        self._step_up = None
        self._target = max(self._target, layer)
        self._backoff = HOLD

    def _give_up(self, factor: float, now: float, reason: str) -> None:
        """End the attempt: back off, and leave a layer that was tried with media."""
        self.reason = reason
        attempt, self._step_up = self._step_up, None
        self._backoff = min(self._backoff * factor, HOLD_MAX)
        self._hold_until = max(self._hold_until, now + self._backoff)
        if attempt is not None and attempt.with_media:
            self._lower(attempt.from_layer, now)

    def _step_down(self, layer: int, now: float, reason: str) -> None:
        if self._step_up is not None:
            self._give_up(FAILED, now, reason)
        self.reason = reason
        self._lower(layer, now)

    def _lower(self, layer: int, now: float) -> None:
        """A bandwidth step down. The evidence that caused it is spent either way."""
        self._losses.clear()
        self._short_rembs = 0
        self._restart_nack_window(now)
        if max(layer, 0) < self._target:
            self._target = max(layer, 0)
            self._hold_until = max(self._hold_until, now + self._backoff)

    def _count_packets(self, nacked: int, sent: int, now: float) -> None:
        if now - self._window_start > NACK_WINDOW_MAX:
            self._restart_nack_window(now)
        if now >= self._window_start:  # not in the grace after a switch
            self._window_nacked += nacked
            self._window_sent += sent
        attempt = self._step_up
        if attempt is not None and attempt.since is not None:
            attempt.nacked += nacked
            attempt.sent += sent
            floor = self._floor_below(attempt.layer)
            if (
                now - attempt.since >= ATTEMPT_NACK_MIN
                and attempt.nacked > (ATTEMPT_NACK + floor) * attempt.sent > 0
            ):
                self._give_up(FAILED, now, "NACKs during the attempt")
        if (
            now - self._window_start >= NACK_WINDOW_MIN
            and self._window_nacked > (NACK_HEAVY + self._floor_below(self._current)) * self._window_sent > 0
        ):
            self._step_down(self._layer(now) - 1, now, "NACK ratio")

    def _restart_nack_window(self, now: float) -> None:
        self._window_start, self._window_nacked, self._window_sent = now, 0, 0

    def _floor_below(self, layer: int) -> float:
        """Loss the viewer showed on a lower layer: random, not caused by the rate."""
        known = [loss for loss in self._loss_on[:layer] if loss is not None]
        return min(min(known), LOSS_FLOOR_MAX) if known else 0.0

    def _floor_besides(self, layer: int) -> float:
        """For a step up from ``layer``: a higher layer that lost as much proves it too."""
        known = [loss for i, loss in enumerate(self._loss_on) if loss is not None and i != layer]
        return min(min(known), LOSS_FLOOR_MAX) if known else 0.0

    def _budget(self, remb: float) -> float:
        """What REMB leaves for video, scaled by loss (mediasoup): x1.08, x1 or x(1 - loss / 2)."""
        budget = remb * REMB_USABLE - self._audio
        if self._loss < LOSS_CLEAN:
            return budget * 1.08
        if self._loss > LOSS_HEAVY:
            return budget * (1 - 0.5 * self._loss)
        return budget

    def _highest_fitting(self, budget: float) -> int:
        fitting = (
            layer
            for layer in range(self._count)
            if self._active_since[layer] is not None and self._rates[layer] * LAYER_FITS <= budget
        )
        return max(fitting, default=0)

    def _remb_clamp(self, layer: int) -> float:
        """The highest REMB a viewer receiving only ``layer`` and audio can send."""
        return REMB_CLAMP_FACTOR * (self._rates[layer] + self._audio) + REMB_CLAMP_EXTRA

    def _steady(self, layer: int, now: float) -> bool:
        since = self._active_since[layer]
        return since is not None and now - since >= LAYER_ACTIVE_MIN

    def _layer(self, now: float) -> int:
        """The wanted layer under the cap, moved down to one that is actually being sent."""
        bound = min(self._target, self._cap)
        for layer in range(bound, -1, -1):
            if self._steady(layer, now) or (
                layer == self._current and self._active_since[layer] is not None
            ):
                return layer
        for layer in range(bound, -1, -1):
            if self._active_since[layer] is not None:
                return layer  # just (re)started, but nothing steadier at or below
        for layer in range(bound + 1, self._count):
            if self._active_since[layer] is not None:
                return layer  # nothing at or below the cap is sent: the cheapest that is
        return bound  # no layer reported yet
