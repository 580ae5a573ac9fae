"""Keyframe detection and keyframe requests toward the publisher.

A viewer can only start decoding at a keyframe, and a browser publisher sends one only
when asked (DESIGN.md: 30 s to a first picture without PLI forwarding, 0.3-0.7 s with
it). Requests are coalesced: however many viewers join or report loss, the publisher
gets at most one PLI per ``min_interval`` per track, because every keyframe costs all
viewers bitrate.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from typing import Optional

DEFAULT_MIN_INTERVAL = 0.5  # seconds between PLIs to one publisher track
_START_CODE = b"\x00\x00\x01"
_VP8_START_CODE = b"\x9d\x01\x2a"
_VP8_HEADER = 10  # frame tag (3), start code (3), width and height (2 + 2)
_H264_NON_IDR_SLICE = 1
_H264_IDR = 5
_H264_SPS = 7
_H264_PPS = 8


def is_vp8_keyframe(frame: bytes) -> bool:
    """RFC 6386 9.1: a key frame's tag has the low bit 0 and is followed by the start
    code 9d 01 2a and the frame size. Checking the start code too means a frame that
    lost its first packet (whose first byte may have the bit clear by chance) is not
    handed to viewers or the recorder as a keyframe. A delta frame costs a length and
    a bit test."""
    return len(frame) >= _VP8_HEADER and not frame[0] & 1 and frame[3:6] == _VP8_START_CODE


def is_h264_keyframe(frame: bytes) -> bool:
    """An Annex-B access unit (as aiortc depayloads it) that a decoder can start at: an
    IDR slice preceded by an SPS and a PPS. Browsers and x264 send all three in every
    keyframe's access unit, and libwebrtc's receiver drops an IDR whose parameter sets
    it has not seen; an IDR alone is what is left when the packet carrying them was
    lost. Parameter sets come before the first slice, so the scan stops there: a delta
    frame costs one ``find``."""
    find = frame.find
    position = find(_START_CODE)
    length = len(frame)
    parameter_sets = 0
    while 0 <= position < length - 3:
        nal_type = frame[position + 3] & 0x1F
        if nal_type == _H264_IDR:
            return parameter_sets == 3
        if nal_type == _H264_NON_IDR_SLICE:
            return False
        if nal_type == _H264_SPS:
            parameter_sets |= 1
        elif nal_type == _H264_PPS:
            parameter_sets |= 2
        position = find(_START_CODE, position + 3)
    return False


def keyframe_detector(codec_name: str) -> Callable[[bytes], bool]:
    name = codec_name.lower()
    if name == "vp8":
        return is_vp8_keyframe
    if name == "h264":
        return is_h264_keyframe
    return lambda frame: True  # audio: every frame stands alone


def vp8_dimensions(keyframe: bytes) -> Optional[tuple[int, int]]:
    """Width and height from a VP8 key frame header (RFC 6386 9.1), for the recorder;
    None without a header or with a zero size (libavformat refuses a 0x0 stream)."""
    if len(keyframe) < _VP8_HEADER or keyframe[0] & 1 or keyframe[3:6] != _VP8_START_CODE:
        return None
    width = (keyframe[6] | keyframe[7] << 8) & 0x3FFF
    height = (keyframe[8] | keyframe[9] << 8) & 0x3FFF
    return (width, height) if width and height else None


class KeyframeRequester:
    """Turns any number of keyframe requests for one track into rate-limited PLIs.

    ``request()`` is cheap and synchronous. If a PLI is already out and no keyframe has
    arrived yet, the coming keyframe serves the new request too; if the last PLI was
    sent less than ``min_interval`` ago, one PLI is scheduled for when the interval
    ends; a PLI unanswered for ``retry_after`` is repeated (PLIs travel over UDP).

    Until the track's first keyframe, an unanswered PLI is repeated after
    ``min_interval`` instead: nobody has a picture yet and the recording has not
    started, and a PLI sent before the publisher's stream began (the relay asks as soon
    as a show needs a keyframe) is answered by the stream's first keyframe, which is
    the one a lossy start loses (its first packet, or all of it). Waiting
    ``retry_after`` for it cut up to a second off the start of such recordings.
    """

    def __init__(
        self,
        send_pli: Callable[[], None],
        *,
        min_interval: float = DEFAULT_MIN_INTERVAL,
        retry_after: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._send_pli = send_pli
        self._clock = clock
        self.min_interval = min_interval
        self.retry_after = retry_after
        self._last_sent = -math.inf
        self._outstanding = False
        self._seen_keyframe = False
        self._timer: Optional[asyncio.TimerHandle] = None
        self.requests = 0
        self.sent = 0

    def request(self) -> None:
        self.requests += 1
        if self._timer is not None:
            return
        now = self._clock()
        retry_after = self.retry_after if self._seen_keyframe else self.min_interval
        if self._outstanding and now - self._last_sent < retry_after:
            return
        wait = self._last_sent + self.min_interval - now
        if wait <= 0:
            self._fire()
        else:
            self._timer = asyncio.get_running_loop().call_later(wait, self._fire)

    def keyframe_seen(self) -> None:
        self._outstanding = False
        self._seen_keyframe = True

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _fire(self) -> None:
        self._timer = None
        self._last_sent = self._clock()
        self._outstanding = True
        self.sent += 1
        self._send_pli()


_HIGH_PROFILES = {100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135}


class _Bits:
    """MSB-first bit reader with Exp-Golomb codes (H.264 7.2, 9.1)."""

    def __init__(self, data: bytes) -> None:
        self._value = int.from_bytes(data, "big")
        self._left = len(data) * 8

    def u(self, count: int) -> int:
        if count > self._left:
            raise ValueError("SPS is truncated")
        self._left -= count
        return (self._value >> self._left) & ((1 << count) - 1)

    def ue(self) -> int:
        zeros = 0
        while self.u(1) == 0:
            zeros += 1
            if zeros > 31:
                raise ValueError("bad Exp-Golomb code")
        return (1 << zeros) - 1 + self.u(zeros)

    def se(self) -> int:
        code = self.ue()
        return (code + 1) // 2 if code & 1 else -(code // 2)


def h264_dimensions(access_unit: bytes) -> Optional[tuple[int, int]]:
    """Width and height from the SPS in an Annex-B access unit (H.264 7.3.2.1.1), for
    the recorder: Matroska needs them in its header and the relay never decodes. None
    without an SPS, or with one that does not parse."""
    position = access_unit.find(_START_CODE)
    while position != -1:
        start = position + 3
        end = access_unit.find(_START_CODE, start)
        if start < len(access_unit) and access_unit[start] & 0x1F == _H264_SPS:
            nal = access_unit[start + 1 : end if end != -1 else len(access_unit)]
            try:
                width, height = _sps_dimensions(nal.replace(b"\x00\x00\x03", b"\x00\x00"))
            except ValueError:
                return None
            # a corrupt SPS can crop to nothing; libavformat refuses a 0x0 stream
            return (width, height) if width > 0 and height > 0 else None
        position = end
    return None


def _sps_dimensions(rbsp: bytes) -> tuple[int, int]:
    bits = _Bits(rbsp)
    profile_idc = bits.u(8)
    bits.u(16)  # constraint flags, level_idc
    bits.ue()  # seq_parameter_set_id
    chroma_format_idc = 1
    if profile_idc in _HIGH_PROFILES:
        chroma_format_idc = bits.ue()
        if chroma_format_idc == 3:
            bits.u(1)  # separate_colour_plane_flag
        bits.ue()  # bit_depth_luma_minus8
        bits.ue()  # bit_depth_chroma_minus8
        bits.u(1)  # qpprime_y_zero_transform_bypass_flag
        if bits.u(1):  # seq_scaling_matrix_present_flag
            for index in range(12 if chroma_format_idc == 3 else 8):
                if bits.u(1):
                    last = following = 8
                    for _ in range(16 if index < 6 else 64):
                        if following:
                            following = (last + bits.se() + 256) % 256
                        last = following or last
    bits.ue()  # log2_max_frame_num_minus4
    poc_type = bits.ue()
    if poc_type == 0:
        bits.ue()
    elif poc_type == 1:
        bits.u(1)
        bits.se()
        bits.se()
        for _ in range(bits.ue()):
            bits.se()
    bits.ue()  # max_num_ref_frames
    bits.u(1)  # gaps_in_frame_num_value_allowed_flag
    width = (bits.ue() + 1) * 16
    map_units = bits.ue() + 1
    frame_mbs_only = bits.u(1)
    height = (2 - frame_mbs_only) * map_units * 16
    if not frame_mbs_only:
        bits.u(1)  # mb_adaptive_frame_field_flag
    bits.u(1)  # direct_8x8_inference_flag
    if bits.u(1):  # frame_cropping_flag
        left, right, top, bottom = bits.ue(), bits.ue(), bits.ue(), bits.ue()
        crop_x = 1 if chroma_format_idc in (0, 3) else 2
        crop_y = (2 - frame_mbs_only) * (2 if chroma_format_idc == 1 else 1)
        width -= (left + right) * crop_x
        height -= (top + bottom) * crop_y
    return width, height
