"""The per-viewer simulcast layer controller, driven by synthetic feedback traces.

Times are plain floats passed as arguments: minutes of a viewer's life run in
milliseconds, with no sleeps and no network.
"""

from __future__ import annotations

from math import inf

import pytest

from live.layer_control import LayerController

RATES = [150_000.0, 500_000.0, 1_500_000.0]  # q / h / f, as the studio page will send them
AUDIO = 64_000.0
ALL_SENT = [True, True, True]
TOP = 2
TICK = 0.25
PACKET_BITS = 1_200 * 8


class Viewer:
    """Plays one viewer's feedback to a controller the way the relay will.

    Every 0.25 s tick the relay asks for the target and switches at once (as if the
    keyframe came immediately), then sends the layer, audio and any probe padding; the
    link loses what exceeds ``capacity`` (plus ``extra_loss``), and the viewer NACKs it.
    Every second: the layer rates and an RR. From 5 s on, every 0.5 s, a REMB shaped like
    libwebrtc's estimator: the first equals the throughput, then +8 %/s but never above
    1.5 x received + 10 kbit/s, and 0.85 x throughput on overuse. ``remb_override``
    sets the estimate to a fixed value; once cleared, the estimate goes on from there.
    """

    def __init__(
        self,
        controller: LayerController,
        *,
        capacity: float = inf,
        sends_remb: bool = True,
        probes: bool = True,
        sent_layers: list[bool] = ALL_SENT,
    ) -> None:
        self.ctl = controller
        self.capacity = capacity
        self.sends_remb = sends_remb
        self.probes = probes
        self.sent_layers = list(sent_layers)
        self.extra_loss = 0.0
        self.remb_override: float | None = None
        self.most_padding = 0.0
        self._estimate: float | None = None
        self._layer: int | None = None
        self._tick = 0

    @property
    def now(self) -> float:
        return self._tick * TICK

    def run_until(self, end: float) -> list[tuple[float, int]]:
        """Play ticks from now until ``end`` (exclusive); (time, layer) at each tick."""
        trace = []
        while self.now < end:
            trace.append((self.now, self._step(self.now)))
            self._tick += 1
        return trace

    def _step(self, now: float) -> int:
        ctl, every_second = self.ctl, self._tick % 4 == 0
        if every_second:
            ctl.on_layer_rates(RATES, AUDIO, self.sent_layers, now)
        layer = ctl.target(now)
        if layer != self._layer:
            self._layer = layer
            ctl.on_switched(layer, now)
        padding = ctl.want_probe(now) if self.probes else 0.0
        if padding:
            ctl.on_padding_sent(padding * TICK, now)
        self.most_padding = max(self.most_padding, padding)
        sent = RATES[layer] + AUDIO + padding
        loss = min(1.0, max(0.0, 1 - self.capacity / sent) + self.extra_loss)
        packets = round(sent * TICK / PACKET_BITS)
        ctl.on_packets_sent(packets, now)
        if nacked := round(packets * loss):
            ctl.on_nack(nacked, now)
        if every_second and now > 0:
            ctl.on_receiver_report(loss, now)
        if self.sends_remb and now >= 5.0 and self._tick % 2 == 0:
            ctl.on_remb(self._remb(sent, sent * (1 - loss)), now)
        return layer

    def _remb(self, sent: float, received: float) -> float:
        if self.remb_override is not None:
            self._estimate = self.remb_override
        elif self._estimate is None:
            self._estimate = received
        elif sent > self.capacity:
            self._estimate = 0.85 * received
        else:
            grown = self._estimate * 1.08**0.5
            clamp = 1.5 * received + 10_000
            self._estimate = grown if grown <= clamp else max(self._estimate, clamp)
        return self._estimate


def on_top_layer(now: float = 0.0) -> LayerController:
    ctl = LayerController(3, initial=TOP, now=now)
    ctl.on_layer_rates(RATES, AUDIO, ALL_SENT, now)
    return ctl


def layers(trace: list[tuple[float, int]], start: float = 0.0, end: float = inf) -> set[int]:
    return {layer for t, layer in trace if start <= t < end}


def switch_times(trace: list[tuple[float, int]], before: int, after: int) -> list[float]:
    return [t for (_, a), (t, b) in zip(trace, trace[1:]) if (a, b) == (before, after)]


def excursions(trace: list[tuple[float, int]], layer: int) -> list[float]:
    """How long each stay on ``layer`` lasted."""
    ups = [t for (_, a), (t, b) in zip(trace, trace[1:]) if a != layer and b == layer]
    downs = [t for (_, a), (t, b) in zip(trace, trace[1:]) if a == layer and b != layer]
    return [down - up for up, down in zip(ups, downs)]


# -- where a viewer starts -------------------------------------------------------------------


def test_viewer_starts_on_the_middle_layer():
    ctl = LayerController(3, now=0.0)
    ctl.on_layer_rates(RATES, AUDIO, ALL_SENT, 0.0)

    assert ctl.target(0.0) == 1


def test_viewer_with_a_lower_cap_starts_on_the_cap():
    ctl = LayerController(3, now=0.0)
    ctl.on_layer_rates(RATES, AUDIO, ALL_SENT, 0.0)

    ctl.set_cap(0)

    assert ctl.target(0.0) == 0


# -- climbing --------------------------------------------------------------------------------


def test_clean_link_climbs_from_the_lowest_layer_to_the_top_within_30_seconds():
    viewer = Viewer(LayerController(3, initial=0, now=0.0))

    trace = viewer.run_until(30.0)

    assert trace[-1][1] == TOP
    assert [layer for _, layer in trace] == sorted(layer for _, layer in trace)  # never down
    assert viewer.most_padding > 0  # the last step needed a probe to lift the REMB clamp


def test_clean_link_climbs_to_the_top_even_if_the_relay_never_probes():
    viewer = Viewer(LayerController(3, initial=0, now=0.0), probes=False)

    trace = viewer.run_until(90.0)

    assert layers(trace, start=45.0) == {TOP}


def test_relay_that_never_probes_still_lets_a_viewer_back_up_after_a_downgrade():
    # After the downgrade the REMB stays above what h alone could lift it to (the clamp never
    # lowers an estimate), so only trying f itself can show the link carries it.
    viewer = Viewer(on_top_layer(), probes=False)
    viewer.run_until(10.0)
    viewer.remb_override = 1_300_000  # short of f on the REMBs at 10.0 and 10.5 s
    trace = viewer.run_until(11.0)
    viewer.remb_override = None

    trace += viewer.run_until(90.0)

    assert layers(trace, start=11.0, end=20.0) == {1}
    assert layers(trace, start=60.0) == {TOP}


def test_probe_asks_for_padding_that_lets_the_remb_clamp_pass_the_goal():
    ctl = LayerController(3, initial=1, now=0.0)
    ctl.on_layer_rates(RATES, AUDIO, ALL_SENT, 0.0)
    for second in range(1, 6):
        ctl.on_receiver_report(0.0, float(second))
    ctl.on_remb(800_000, 5.0)

    padding = ctl.want_probe(5.0)

    goal = 1.2 * RATES[TOP] + AUDIO
    assert 1.5 * (RATES[1] + AUDIO + padding) + 10_000 > goal
    assert ctl.target(5.0) == 1  # probing does not switch
    ctl.on_remb(goal, 5.5)
    assert ctl.target(5.5) == TOP
    assert ctl.want_probe(5.5) == 0.0


def test_remb_that_falls_during_a_probe_ends_it_without_a_switch():
    ctl = LayerController(3, initial=1, now=0.0)
    ctl.on_layer_rates(RATES, AUDIO, ALL_SENT, 0.0)
    for second in range(1, 6):
        ctl.on_receiver_report(0.0, float(second))
    ctl.on_remb(800_000, 5.0)
    assert ctl.want_probe(5.0) > 0

    ctl.on_remb(700_000, 5.5)

    assert ctl.want_probe(5.5) == 0.0
    assert ctl.target(5.5) == 1


# -- stepping down ---------------------------------------------------------------------------


def test_sudden_remb_drop_steps_down_two_layers_at_once():
    ctl = on_top_layer()
    ctl.on_remb(3_000_000, 5.0)
    ctl.on_remb(3_000_000, 5.5)

    ctl.on_remb(400_000, 6.0)

    assert ctl.target(6.0) == 0


def test_remb_short_of_the_layer_twice_in_a_row_steps_down():
    ctl = on_top_layer()
    ctl.on_remb(1_500_000, 5.0)

    ctl.on_remb(1_300_000, 5.5)  # not a sharp drop, but short of 0.9 x 1.5 Mbit/s
    assert ctl.target(5.5) == TOP
    ctl.on_remb(1_300_000, 6.0)

    assert ctl.target(6.0) == 1


def test_creeping_loss_steps_down_one_layer_after_two_reports_above_10_percent():
    ctl = on_top_layer()
    for second, loss in enumerate([0.03, 0.06, 0.11], start=1):
        ctl.on_receiver_report(loss, float(second))
    assert ctl.target(3.0) == TOP  # one bad report is not enough

    ctl.on_receiver_report(0.12, 4.0)

    assert ctl.target(4.0) == 1


def test_nack_ratio_above_8_percent_over_2_seconds_steps_down_one_layer():
    ctl = on_top_layer()
    for tick in range(8):  # 10 % of packets NACKed, for 1.75 s
        ctl.on_packets_sent(100, tick * TICK)
        ctl.on_nack(10, tick * TICK)
    assert ctl.target(1.75) == TOP

    ctl.on_packets_sent(100, 2.0)
    ctl.on_nack(10, 2.0)

    assert ctl.target(2.0) == 1


# -- holding back after a downgrade ----------------------------------------------------------


def test_no_step_up_for_10_seconds_after_a_bandwidth_downgrade():
    viewer = Viewer(on_top_layer())
    viewer.remb_override = 3_000_000
    viewer.run_until(10.0)
    viewer.remb_override = 1_000_000  # the REMB at 10.0 s drops
    trace = viewer.run_until(10.5)
    viewer.remb_override = 3_000_000  # and recovers at once

    trace += viewer.run_until(30.0)

    assert layers(trace, start=10.25, end=20.0) == {1}
    assert switch_times(trace, 1, TOP) == [20.0]


def test_each_failed_step_up_doubles_the_hold_up_to_two_minutes():
    # No REMB and no padding: every step up is a try of the top layer itself, which this
    # link cannot carry.
    viewer = Viewer(LayerController(3, initial=1, now=0.0), sends_remb=False, probes=False, capacity=1_000_000)

    trace = viewer.run_until(420.0)

    ups, downs = switch_times(trace, 1, TOP), switch_times(trace, TOP, 1)
    waits = [up - down for down, up in zip(downs, ups[1:])]
    # (each try starts as a padding probe that waits 1 s for padding that never comes)
    assert waits == pytest.approx([20, 40, 80, 120, 120], abs=1.0)


# -- the viewer's cap ------------------------------------------------------------------------


def test_viewer_never_goes_above_its_cap():
    ctl = LayerController(3, initial=0, now=0.0)
    ctl.set_cap(1)
    viewer = Viewer(ctl)

    viewer.run_until(30.0)
    viewer.most_padding = 0.0  # what climbing to the cap took
    trace = viewer.run_until(120.0)

    assert layers(trace) == {1}
    assert viewer.most_padding == 0.0  # nothing above the cap is probed for


def test_lowering_the_cap_lowers_the_layer_at_once():
    ctl = on_top_layer()

    ctl.set_cap(0)

    assert ctl.target(0.0) == 0


def test_raising_the_cap_lets_the_viewer_climb_without_a_downgrade_hold():
    ctl = on_top_layer()
    ctl.set_cap(0)
    viewer = Viewer(ctl, sends_remb=False)
    viewer.run_until(20.0)

    ctl.set_cap(None)
    trace = viewer.run_until(35.0)

    assert trace[-1][1] == TOP


def test_viewer_capped_below_every_layer_that_is_sent_gets_the_lowest_one_that_is():
    ctl = on_top_layer()
    ctl.set_cap(0)

    ctl.on_layer_rates(RATES, AUDIO, [False, True, True], 1.0)  # q stalled

    assert ctl.target(1.0) == 1  # video at the least cost, rather than none


# -- layers the publisher does not send ------------------------------------------------------


def test_layer_that_is_not_sent_is_never_chosen():
    viewer = Viewer(LayerController(3, initial=0, now=0.0), sent_layers=[True, True, False])

    trace = viewer.run_until(120.0)

    assert max(layers(trace)) == 1


def test_viewer_leaves_a_layer_the_publisher_stops_and_returns_once_it_is_steady_again():
    ctl = on_top_layer()

    ctl.on_layer_rates(RATES, AUDIO, [True, True, False], 1.0)
    assert ctl.target(1.0) == 1
    ctl.on_switched(1, 1.0)

    ctl.on_layer_rates(RATES, AUDIO, ALL_SENT, 2.0)
    assert ctl.target(3.0) == 1  # restarted 1 s ago: not yet
    assert ctl.target(4.0) == TOP


# -- viewers that send no REMB ---------------------------------------------------------------


def test_viewer_without_remb_climbs_on_a_clean_link():
    viewer = Viewer(LayerController(3, initial=0, now=0.0), sends_remb=False)

    trace = viewer.run_until(60.0)

    assert layers(trace, start=15.0) == {TOP}


def test_viewer_without_remb_comes_back_down_on_a_lossy_link():
    viewer = Viewer(LayerController(3, initial=TOP, now=0.0), sends_remb=False)
    viewer.capacity = 1_000_000  # carries h (564 kbit/s with audio), not f (1.56 Mbit/s)

    trace = viewer.run_until(120.0)

    assert switch_times(trace, TOP, 1)[0] <= 3.0
    assert trace[-1][1] == 1
    assert all(stay <= 3.0 for stay in excursions(trace, TOP))  # each retry reverted quickly


def test_relay_that_never_probes_does_not_keep_a_remb_viewer_on_a_layer_its_link_cannot_carry():
    viewer = Viewer(LayerController(3, initial=1, now=0.0), probes=False, capacity=1_200_000)

    trace = viewer.run_until(240.0)

    assert trace[-1][1] == 1
    assert all(stay <= 3.0 for stay in excursions(trace, TOP))


# -- random loss -----------------------------------------------------------------------------


def test_random_loss_that_every_layer_shows_does_not_keep_a_viewer_off_the_top():
    # Wi-Fi-like: 5 % of packets lost whatever the rate; NACKs repair them.
    viewer = Viewer(LayerController(3, initial=0, now=0.0), sends_remb=False)
    viewer.extra_loss = 0.05

    trace = viewer.run_until(90.0)

    assert layers(trace, start=60.0) == {TOP}


def test_random_loss_does_not_hide_congestion_above_it():
    # 5 % lost on every layer, and the link carries h but not f.
    viewer = Viewer(LayerController(3, initial=0, now=0.0), sends_remb=False, capacity=1_000_000)
    viewer.extra_loss = 0.05

    trace = viewer.run_until(120.0)

    assert trace[-1][1] == 1
    assert all(stay <= 3.0 for stay in excursions(trace, TOP))


# -- the padding probe (viewers without REMB) ------------------------------------------------


def test_a_padding_probe_keeps_a_viewer_off_a_layer_its_link_cannot_carry():
    # The top layer is only ever probed for with padding, which this link cannot carry:
    # the viewer never switches to it (no keyframe it cannot receive), and the probes
    # back off like failed step ups.
    viewer = Viewer(LayerController(3, initial=1, now=0.0), sends_remb=False, capacity=1_000_000)

    trace = viewer.run_until(300.0)

    assert layers(trace) == {1}
    assert viewer.most_padding > 0


def test_a_padding_probe_that_flows_clean_takes_the_next_layer():
    viewer = Viewer(LayerController(3, initial=1, now=0.0), sends_remb=False)

    trace = viewer.run_until(20.0)

    up = switch_times(trace, 1, TOP)[0]
    assert viewer.most_padding >= 1.2 * RATES[TOP] + AUDIO - (RATES[1] + AUDIO) - 1
    assert up < 10.0 and layers(trace, start=up) == {TOP}


def test_a_relay_that_sends_no_padding_still_gets_the_layer_tried_for_real():
    viewer = Viewer(LayerController(3, initial=1, now=0.0), sends_remb=False, probes=False)

    trace = viewer.run_until(20.0)

    assert layers(trace, start=12.0) == {TOP}
