"""Reactions (hearts, claps…) are counted, not relayed: each process adds up the taps
it receives and once a second sends the show room one `reactions {counts}` event.

Anonymous viewers may react (tapping a heart is part of watching), but every socket is
capped at TAPS_PER_SECOND so a script cannot flood the counters.
"""

from __future__ import annotations

from collections import Counter
from typing import Literal

Kind = Literal["heart", "clap", "fire", "wow", "laugh"]
TAPS_PER_SECOND = 10
INTERVAL = 1.0  # seconds between aggregate events


class TapLimit:
    """Per-socket cap on taps in the current second."""

    __slots__ = ("second", "taps")

    def __init__(self) -> None:
        self.second = 0
        self.taps = 0

    def allow(self, now: float) -> bool:
        second = int(now)
        if second != self.second:
            self.second, self.taps = second, 0
        if self.taps >= TAPS_PER_SECOND:
            return False
        self.taps += 1
        return True


class Reactions:
    def __init__(self) -> None:
        self._counts: dict[int, Counter[str]] = {}

    def add(self, show_id: int, kind: str) -> None:
        self._counts.setdefault(show_id, Counter())[kind] += 1

    def drain(self) -> dict[int, dict[str, int]]:
        """Counts since the last drain, per show."""
        counts, self._counts = self._counts, {}
        return {show_id: dict(c) for show_id, c in counts.items() if c}
