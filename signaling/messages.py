"""Parse and check signaling messages (protocol version 1, docs/protocol.md).

Pure functions with no I/O: each client frame becomes a plain dict whose
fields have been checked, or a `ProtocolError` naming the field and the fix.
"""

from __future__ import annotations

import json
import re
from typing import Any

from hub.errors import ProtocolError

PROTOCOL_VERSION = 1
MAX_SDP_CHARS = 60_000
MAX_NAME_CHARS = 64
MAX_TEXT_CHARS = 2000
MAX_TRACK_IDS = 256
ROOM_ID = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
REQUEST_ID_MAX = 64
SOURCES = ("camera", "microphone", "screen", "screen-audio")
# Sources of each media kind; a section offering another is rejected.
SOURCES_OF_KIND = {
    "audio": ("microphone", "screen-audio"),
    "video": ("camera", "screen"),
}
MUTABLE_BY_HOST = ("microphone", "camera")
SESSION_KINDS = ("joint", "mediation", "lecture")
PEER_ID_MAX = 64
PC_NAMES = ("up", "down")

CLIENT_TYPES = (
    "join",
    "publish",
    "answer",
    "ice",
    "subscribe",
    "unsubscribe",
    "mute",
    "ping",
    "leave",
    # Session controls (signaling/moderation.py).
    "chat",
    "raise-hand",
    "give-floor",
    "take-floor",
    "roll-call",
    "mute-all",
    "mute-peer",
    "remove",
    "lock",
    "unlock",
    "admit",
    "side-room",
    "return",
    "recording",
    "attendance",
)


def _describe(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False) if value is not None else "null"
    return text if len(text) <= 40 else text[:37] + "..."


def _field(message: dict, name: str, kind: type, *, required: bool = True) -> Any:
    if name not in message:
        if required:
            raise ProtocolError(f"field {name!r} is missing from {message['type']!r}")
        return None
    value = message[name]
    if kind is int and isinstance(value, bool):
        value = None
    if not isinstance(value, kind):
        expected = {
            str: "a string",
            int: "an integer",
            dict: "an object",
            list: "a list",
            bool: "true or false",
        }[kind]
        raise ProtocolError(
            f"field {name!r} of {message['type']!r} must be {expected}, "
            f"got {_describe(message[name])}"
        )
    return value


def _string(
    message: dict, name: str, max_chars: int, *, required: bool = True
) -> str | None:
    value = _field(message, name, str, required=required)
    if value is None:
        return None
    if len(value) > max_chars:
        raise ProtocolError(
            f"field {name!r} of {message['type']!r} is {len(value)} characters long; "
            f"the limit is {max_chars}"
        )
    return value


def parse(frame: str | bytes, max_bytes: int) -> dict:
    """Decode one WebSocket frame into a checked message dict."""
    size = len(frame.encode("utf-8") if isinstance(frame, str) else frame)
    if size > max_bytes:
        raise ProtocolError(
            f"message of {size} bytes is over the limit of {max_bytes} bytes",
            code="too-large",
        )
    try:
        message = json.loads(frame)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError(
            f"message is not valid JSON: {exc}", code="bad-json"
        ) from None
    except RecursionError:
        raise ProtocolError(
            "message nests arrays or objects too deeply to decode; send a flat "
            "JSON object",
            code="bad-json",
        ) from None
    if not isinstance(message, dict):
        raise ProtocolError(
            f"message must be a JSON object, got {_describe(message)}", code="bad-json"
        )
    kind = message.get("type")
    if not isinstance(kind, str):
        raise ProtocolError(f"field 'type' must be a string, got {_describe(kind)}")
    if kind not in CLIENT_TYPES:
        raise ProtocolError(
            f"unknown message type {_describe(kind)}; expected one of: "
            + ", ".join(CLIENT_TYPES),
            code="unknown-type",
        )
    request_id = message.get("id")
    if request_id is not None and (
        not isinstance(request_id, str) or len(request_id) > REQUEST_ID_MAX
    ):
        raise ProtocolError(
            f"field 'id' must be a string of at most {REQUEST_ID_MAX} characters, "
            f"got {_describe(request_id)}"
        )
    return _CHECKS[kind](message)


def request_id_of(frame: str | bytes) -> str | None:
    """Best-effort `id` of a frame that failed to parse, to echo in the error."""
    try:
        message = json.loads(frame)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    if isinstance(message, dict):
        value = message.get("id")
        if isinstance(value, str) and len(value) <= REQUEST_ID_MAX:
            return value
    return None


def _check_join(message: dict) -> dict:
    version = _field(message, "version", int, required=False)
    if version is None:
        version = PROTOCOL_VERSION
    if version != PROTOCOL_VERSION:
        raise ProtocolError(
            f"protocol version {version} is not supported; this hub speaks "
            f"version {PROTOCOL_VERSION}",
            code="unsupported-version",
        )
    room = _string(message, "room", 64)
    if not ROOM_ID.fullmatch(room):
        raise ProtocolError(
            f"room id {_describe(room)} is invalid; use 1 to 64 letters, digits, "
            "'-', '_' or '.'"
        )
    name = _string(message, "name", MAX_NAME_CHARS)
    if not name.strip():
        raise ProtocolError("field 'name' must not be empty; send a display name")
    token = _string(message, "token", 4096, required=False)
    kind = _string(message, "kind", 16, required=False)
    if kind is not None and kind not in SESSION_KINDS:
        raise ProtocolError(
            f"field 'kind' must be one of {', '.join(SESSION_KINDS)}, "
            f"got {_describe(kind)}"
        )
    subscribe = _string(message, "subscribe", 8, required=False) or "all"
    if subscribe not in ("all", "none"):
        raise ProtocolError(
            f"field 'subscribe' must be 'all' or 'none', got {_describe(subscribe)}"
        )
    return {
        **message,
        "version": version,
        "room": room,
        "name": name.strip(),
        "token": token,
        "kind": kind,
        "subscribe": subscribe,
    }


def _check_sdp(message: dict) -> str:
    sdp = _string(message, "sdp", MAX_SDP_CHARS)
    if not sdp.startswith("v=0"):
        raise ProtocolError(
            f"field 'sdp' must be an SDP document starting with 'v=0', "
            f"got {_describe(sdp[:20])}",
            code="bad-sdp",
        )
    lines = sdp.replace("\r\n", "\n").split("\n")
    if not any(line.startswith("m=") for line in lines):
        raise ProtocolError(
            "field 'sdp' has no media section ('m=' line); send the description "
            "that RTCPeerConnection made",
            code="bad-sdp",
        )
    # WebRTC media is always DTLS-SRTP (RFC 8827 section 6.5): without a
    # certificate fingerprint the hub could not authenticate the peer.
    if not any(line.startswith("a=fingerprint:") for line in lines):
        raise ProtocolError(
            "field 'sdp' has no DTLS fingerprint ('a=fingerprint:' line); send "
            "the description that RTCPeerConnection made",
            code="bad-sdp",
        )
    return sdp


def _check_publish(message: dict) -> dict:
    sdp = _check_sdp(message)
    sources = _field(message, "sources", dict, required=False) or {}
    if len(sources) > 32:
        raise ProtocolError(
            f"field 'sources' lists {len(sources)} tracks; the limit is 32"
        )
    for mid, source in sources.items():
        if not isinstance(source, str) or source not in SOURCES:
            raise ProtocolError(
                f"sources[{mid!r}] must be one of {', '.join(SOURCES)}, "
                f"got {_describe(source)}"
            )
        if len(mid) > 16:
            raise ProtocolError(f"sources key {mid[:20]!r} is not a valid mid")
    return {**message, "sdp": sdp, "sources": sources}


def _check_pc(message: dict, allowed: tuple[str, ...] = PC_NAMES) -> str:
    pc = _string(message, "pc", 8)
    if pc not in allowed:
        raise ProtocolError(
            f"field 'pc' must be {' or '.join(repr(a) for a in allowed)}, "
            f"got {_describe(pc)}"
        )
    return pc


def _check_answer(message: dict) -> dict:
    pc = _check_pc(message, ("down",))
    return {**message, "pc": pc, "sdp": _check_sdp(message)}


def _check_ice(message: dict) -> dict:
    pc = _check_pc(message)
    if "candidate" not in message:
        raise ProtocolError(
            "field 'candidate' is missing from 'ice'; send null when done"
        )
    candidate = message["candidate"]
    if candidate is None:
        return {**message, "pc": pc, "candidate": None}
    if not isinstance(candidate, dict):
        raise ProtocolError(
            f"field 'candidate' must be an object or null, got {_describe(candidate)}"
        )
    line = candidate.get("candidate")
    if not isinstance(line, str) or len(line) > 1024:
        raise ProtocolError(
            "candidate.candidate must be a candidate line of at most 1024 characters, "
            f"got {_describe(line)}"
        )
    mid = candidate.get("sdpMid")
    index = candidate.get("sdpMLineIndex")
    if mid is not None and not isinstance(mid, str):
        raise ProtocolError(f"candidate.sdpMid must be a string, got {_describe(mid)}")
    if index is not None and (
        not isinstance(index, int) or isinstance(index, bool) or index < 0
    ):
        raise ProtocolError(
            "candidate.sdpMLineIndex must be a non-negative integer, "
            f"got {_describe(index)}"
        )
    return {
        **message,
        "pc": pc,
        "candidate": {"candidate": line, "sdpMid": mid, "sdpMLineIndex": index},
    }


def _check_tracks(message: dict) -> dict:
    tracks = _field(message, "tracks", list)
    if len(tracks) > MAX_TRACK_IDS:
        raise ProtocolError(
            f"field 'tracks' lists {len(tracks)} ids; the limit is {MAX_TRACK_IDS}"
        )
    for track in tracks:
        if not isinstance(track, str) or len(track) > 64:
            raise ProtocolError(
                f"field 'tracks' must list track id strings, got {_describe(track)}"
            )
    return message


def _check_mute(message: dict) -> dict:
    source = _string(message, "source", 16)
    if source not in SOURCES:
        raise ProtocolError(
            f"field 'source' must be one of {', '.join(SOURCES)}, "
            f"got {_describe(source)}"
        )
    _field(message, "muted", bool)
    return message


def _check_plain(message: dict) -> dict:
    return message


def _check_peer(
    message: dict, *, required: bool = True, nullable: bool = False
) -> dict:
    if nullable and message.get("peer", "") is None:
        return {**message, "peer": None}
    peer = _string(message, "peer", PEER_ID_MAX, required=required)
    if peer is not None and not peer:
        raise ProtocolError(
            f"field 'peer' of {message['type']!r} must not be empty; send a peer id "
            "from 'joined', 'peer-joined' or 'waiting-list'"
        )
    return {**message, "peer": peer}


def _check_target(message: dict) -> dict:
    return _check_peer(message)


def _check_roll_call(message: dict) -> dict:
    return _check_peer(message, nullable=True)


def _check_take_floor(message: dict) -> dict:
    return _check_peer(message, required=False)


def _check_chat(message: dict) -> dict:
    text = _string(message, "text", MAX_TEXT_CHARS)
    if not text.strip():
        raise ProtocolError("field 'text' of 'chat' must not be blank; type a message")
    return {**message, "text": text.strip()}


def _check_raise_hand(message: dict) -> dict:
    raised = _field(message, "raised", bool, required=False)
    return {**message, "raised": True if raised is None else raised}


def _check_host_mute(message: dict) -> dict:
    source = _string(message, "source", 16, required=False) or "microphone"
    if source not in MUTABLE_BY_HOST:
        raise ProtocolError(
            f"field 'source' must be one of {', '.join(MUTABLE_BY_HOST)}, "
            f"got {_describe(source)}"
        )
    return {**message, "source": source}


def _check_mute_peer(message: dict) -> dict:
    return _check_host_mute(_check_peer(message))


def _check_recording(message: dict) -> dict:
    _field(message, "on", bool)
    return message


_CHECKS = {
    "join": _check_join,
    "publish": _check_publish,
    "answer": _check_answer,
    "ice": _check_ice,
    "subscribe": _check_tracks,
    "unsubscribe": _check_tracks,
    "mute": _check_mute,
    "ping": _check_plain,
    "leave": _check_plain,
    "chat": _check_chat,
    "raise-hand": _check_raise_hand,
    "give-floor": _check_target,
    "take-floor": _check_take_floor,
    "roll-call": _check_roll_call,
    "mute-all": _check_host_mute,
    "mute-peer": _check_mute_peer,
    "remove": _check_target,
    "lock": _check_plain,
    "unlock": _check_plain,
    "admit": _check_target,
    "side-room": _check_target,
    "return": _check_target,
    "recording": _check_recording,
    "attendance": _check_plain,
}
