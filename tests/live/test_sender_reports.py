"""Viewers' Sender Reports carry the publisher's RTP-time <-> wallclock mapping."""

from __future__ import annotations

import struct

from live.sender_reports import SenderClock, sender_report

NTP_SECOND = 1 << 32


def test_sender_clock_extrapolates_the_publishers_report_to_now():
    clock = SenderClock(90000)
    clock.frame_sent(1_000, now=100.0)
    clock.publisher_report(ntp_timestamp=5_000 * NTP_SECOND, rtp_timestamp=900_000, now=100.0)

    ntp, rtp = clock.mapping(101.5, use_publisher=True)

    assert ntp == 5_001 * NTP_SECOND + NTP_SECOND // 2
    assert rtp == 900_000 + 135_000


def test_sender_clock_falls_back_to_frame_arrival_and_wraps_rtp_time():
    clock = SenderClock(48000)
    clock.frame_sent(0xFFFFFF00, now=10.0)

    _, rtp = clock.mapping(10.01, use_publisher=True)  # no publisher report yet

    assert rtp == (0xFFFFFF00 + 480) & 0xFFFFFFFF


def test_sender_clock_has_no_mapping_before_any_media():
    assert SenderClock(90000).mapping(1.0, use_publisher=False) is None


def test_sender_report_is_an_rtcp_sr_for_the_track():
    report = sender_report(ssrc=0x01020304, ntp=7 << 32, rtp=99, packets=3, octets=4000)

    version, packet_type, length, ssrc = struct.unpack("!BBHI", report[:8])
    assert (version >> 6, packet_type, ssrc) == (2, 200, 0x01020304)
    assert struct.unpack("!QIII", report[8:28]) == (7 << 32, 99, 3, 4000)
