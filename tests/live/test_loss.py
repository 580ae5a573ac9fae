"""Viewers' losses are repaired from the relay's packet history, not by the publisher."""

from __future__ import annotations

from tests.live.conftest import in_order_with_few_gaps


def drop_every_nth_video_packet_once(watcher, n: int) -> list[int]:
    """Make the viewer's network lose 1 in n video RTP packets (first copies only)."""
    dropped: list[int] = []
    seen: set[int] = set()
    video_pts = {c.payloadType for t in watcher.pc.getTransceivers() if t.kind == "video"
                 for c in t._codecs}
    for transceiver in watcher.pc.getTransceivers():
        connection = transceiver.receiver.transport.transport._connection
        for protocol in connection._protocols:
            original = protocol.datagram_received
            counter = [0]

            def lossy(data, addr, original=original, counter=counter):
                if 128 <= data[0] < 192 and (data[1] & 0x7F) in video_pts:
                    sequence_number = data[2] << 8 | data[3]
                    if sequence_number not in seen:
                        seen.add(sequence_number)
                        counter[0] += 1
                        if counter[0] % n == 0:
                            dropped.append(sequence_number)
                            return
                original(data, addr)

            protocol.datagram_received = lossy
    return dropped


async def test_lost_packets_are_retransmitted_from_the_relays_history(hub, publisher, viewer):
    await publisher().publish(hub, 1)
    watcher = viewer()
    await watcher.join(hub, 1)
    await watcher.frames(5)
    dropped = drop_every_nth_video_packet_once(watcher, 7)

    start = len(watcher.counters)
    await watcher.frames(start + 60)

    assert len(dropped) >= 5
    assert hub.stats()["retransmits_total"] >= len(dropped) - 2
    assert in_order_with_few_gaps(watcher.counters[start:]), watcher.counters[start:]
    assert hub.stats()["nacks_received_total"] > 0
