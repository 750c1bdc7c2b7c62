"""Count every decoder and encoder aiortc makes in this process, and the
frames they handle, so that the claim "the relay never transcodes" is
measured rather than assumed. The counts appear in /api/stats."""

from __future__ import annotations

import threading

import aiortc.codecs
import aiortc.rtcrtpreceiver
import aiortc.rtcrtpsender

_lock = threading.Lock()
counts = {"decoders": 0, "encoders": 0, "frames_decoded": 0, "frames_encoded": 0}
_installed = False


def _bump(name: str, amount: int = 1) -> None:
    with _lock:
        counts[name] += amount


class _CountingDecoder:
    def __init__(self, inner) -> None:
        self._inner = inner

    def decode(self, encoded_frame):
        frames = self._inner.decode(encoded_frame)
        _bump("frames_decoded", len(frames))
        return frames


class _CountingEncoder:
    def __init__(self, inner) -> None:
        self._inner = inner

    def encode(self, frame, force_keyframe: bool = False):
        _bump("frames_encoded")
        return self._inner.encode(frame, force_keyframe)

    def pack(self, packet):
        return self._inner.pack(packet)

    def __getattr__(self, name):
        return getattr(self._inner, name)


def install() -> None:
    """Wrap aiortc's codec factories (idempotent)."""
    global _installed
    if _installed:
        return
    original_decoder = aiortc.codecs.get_decoder
    original_encoder = aiortc.codecs.get_encoder

    def get_decoder(codec):
        _bump("decoders")
        return _CountingDecoder(original_decoder(codec))

    def get_encoder(codec):
        _bump("encoders")
        return _CountingEncoder(original_encoder(codec))

    # The receiver and sender modules import the factories by name.
    aiortc.rtcrtpreceiver.get_decoder = get_decoder
    aiortc.rtcrtpsender.get_encoder = get_encoder
    _installed = True


def snapshot() -> dict[str, int]:
    with _lock:
        return dict(counts)
