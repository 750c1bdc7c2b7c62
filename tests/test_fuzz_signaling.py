"""Hostile and malformed signaling frames against a running hub.

Hypothesis draws frames (wrong types, random fields, huge payloads, deep
nesting, binary data, forged room and peer ids, replayed and forged tokens)
and sends them from sockets in room A, while participants of room B listen.
The hub must stay up, answer every bad frame with a documented error code
(never "internal"), and nothing about room A may reach room B.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta

import httpx
import jwt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from hub.auth import make_invite, mint_token
from signaling.messages import CLIENT_TYPES
from tests.hubproc import run_hub, scaled
from tests.sessionclient import AUTH_CONFIG, SECRET, token_for

ROOM_A = "puer-mediation"
ROOM_B = "ninger-mediation"
# Marks text sent from room A, so it can be searched for in room B.
MARKER = "leak-marker-"
MAX_EXAMPLES = 300
# The run stops drawing new examples after this many seconds.
TIME_BUDGET = 50.0
# Every code documented in docs/protocol.md except "internal".
KNOWN_CODES = {
    "bad-json",
    "too-large",
    "bad-message",
    "unknown-type",
    "unsupported-version",
    "not-joined",
    "already-joined",
    "bad-sdp",
    "out-of-order",
    "not-found",
    "unauthorized",
    "forbidden",
    "conflict",
    "rate-limited",
}
# Close codes the hub may use: 1000 after `leave`, 1009 for a frame over
# uvicorn's ws_max_size, 4401 unauthorized, 4408 dropped, 4409 removed.
KNOWN_CLOSE_CODES = {1000, 1009, 4401, 4408, 4409}
# A fresh attacker socket every few examples keeps clear of the rate limit.
EXAMPLES_PER_ATTACKER = 15


def _open(url: str) -> ClientConnection:
    """Open a socket that the caller closes with close(). Entering the
    connection's context is how websockets 17.1 and later ask for a socket
    kept outside a with block."""
    return connect(url, max_size=2**22, open_timeout=scaled(10)).__enter__()


class Listener:
    """A participant of room B that records every message it receives."""

    def __init__(self, url: str, role: str, name: str) -> None:
        self.ws = _open(url)
        self.messages: list[dict] = []
        self.closed_code: int | None = None
        join = {
            "type": "join",
            "room": ROOM_B,
            "name": name,
            "token": token_for(role, ROOM_B, name=name),
        }
        self.ws.send(json.dumps(join))
        self.joined = json.loads(self.ws.recv(timeout=scaled(10)))
        if self.joined["type"] != "joined":
            raise AssertionError(f"{name} could not join {ROOM_B}: {self.joined}")
        self.peer = self.joined["peer"]
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for frame in self.ws:
                self.messages.append(json.loads(frame))
        except ConnectionClosed as closed:
            self.closed_code = closed.rcvd.code if closed.rcvd else None
        else:
            self.closed_code = self.ws.close_code

    def ping(self) -> None:
        self.ws.send(json.dumps({"type": "ping", "id": "alive"}))

    def close(self) -> None:
        self.ws.close()
        self._thread.join(timeout=scaled(5))


class Attacker:
    """Sockets in room A that send the drawn frames and check the replies."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.ws: ClientConnection | None = None
        self.examples = 0
        self.sync_ids = iter(range(10**9))
        # Every peer id the hub gave out in room A (or in rooms other than B).
        self.side_a_peers: set[str] = set()
        self.codes: dict[str, int] = {}

    def _socket(self, joined: bool) -> ClientConnection:
        if not joined:
            return _open(self.url)
        if self.ws is None or self.examples >= EXAMPLES_PER_ATTACKER:
            if self.ws is not None:
                self.ws.close()
            self.ws = _open(self.url)
            self.examples = 0
            join = {
                "type": "join",
                "room": ROOM_A,
                "name": "fuzz mediator",
                "token": token_for("mediator", ROOM_A),
            }
            self.ws.send(json.dumps(join))
            joined_reply = json.loads(self.ws.recv(timeout=scaled(10)))
            assert joined_reply["type"] == "joined", joined_reply
            self._note_peers(joined_reply)
        self.examples += 1
        return self.ws

    def _note_peers(self, message: dict) -> None:
        if message.get("type") in ("joined", "admitted"):
            if isinstance(message.get("peer"), str):
                self.side_a_peers.add(message["peer"])
            for peer in message.get("peers", []):
                self.side_a_peers.add(peer["id"])
        if message.get("type") in ("peer-joined",):
            self.side_a_peers.add(message["peer"]["id"])
        if message.get("type") == "waiting-list":
            for peer in message["peers"]:
                self.side_a_peers.add(peer["id"])

    def send(self, frame: str | bytes, joined: bool) -> None:
        ws = self._socket(joined)
        sync_id = f"sync-{next(self.sync_ids)}"
        try:
            ws.send(frame)
            ws.send(json.dumps({"type": "ping", "id": sync_id}))
            while True:
                message = json.loads(ws.recv(timeout=scaled(10)))
                self._check(message)
                if message.get("type") == "pong" and message.get("id") == sync_id:
                    break
        except ConnectionClosed as closed:
            code = closed.rcvd.code if closed.rcvd else None
            assert code in KNOWN_CLOSE_CODES, f"socket closed with {code}"
            if ws is self.ws:
                self.ws = None
        finally:
            if not joined:
                ws.close()

    def _check(self, message: object) -> None:
        assert isinstance(message, dict), message
        assert isinstance(message.get("type"), str), message
        self._note_peers(message)
        if message["type"] == "error":
            code = message["code"]
            assert code in KNOWN_CODES, f"undocumented error: {message}"
            assert isinstance(message["message"], str)
            self.codes[code] = self.codes.get(code, 0) + 1


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    with run_hub(
        tmp_path_factory.mktemp("hub"), AUTH_CONFIG, idle_timeout=120
    ) as process:
        yield process


@pytest.fixture(scope="module")
def room_b(hub):
    mediator = Listener(hub.ws_url, "mediator", "乙方调解员")
    member = Listener(hub.ws_url, "member", "乙方书记员")
    party = Listener(hub.ws_url, "party", "乙方当事人")
    yield {"mediator": mediator, "member": member, "party": party}
    for listener in (mediator, member, party):
        listener.close()


def _tokens(b_peer_token: str) -> list[str]:
    now = datetime.now(UTC)
    invite = make_invite(SECRET, ROOM_A, "已用邀请", timedelta(hours=1))
    expired = mint_token(
        SECRET,
        "late",
        "puer",
        "chair",
        ttl=timedelta(minutes=1),
        now=now - timedelta(hours=2),
    )
    forged = jwt.encode(
        {"sub": "x", "name": "x", "role": "chair", "kind": "user"},
        "wrong-secret-wrong-secret-wrong-secret",
        algorithm="HS256",
    )
    return [invite.token, expired, forged, b_peer_token, "", "a.b.c", "x" * 5000]


def _frames(b_peers: list[str], tokens: list[str]):
    """Strategy of frames: structured messages, raw JSON and junk."""
    scalars = (
        st.none()
        | st.booleans()
        | st.integers(min_value=-(2**70), max_value=2**70)
        | st.floats(allow_nan=True, allow_infinity=False)
        | st.text(max_size=40)
    )
    values = st.recursive(
        scalars,
        lambda children: (
            st.lists(children, max_size=4)
            | st.dictionaries(st.text(max_size=8), children, max_size=4)
        ),
        max_leaves=12,
    )
    peer_ids = st.sampled_from([*b_peers, "p0", "p1", "", "p" * 64, "p" * 65])
    rooms = st.sampled_from([ROOM_A, "no-such-room", "x" * 65, "bad room"]) | values
    field = values | peer_ids
    message = st.fixed_dictionaries(
        {"type": st.sampled_from([*CLIENT_TYPES, "bogus", ""])},
        optional={
            "peer": field,
            "text": st.text(max_size=30).map(lambda text: MARKER + text) | values,
            "room": rooms,
            "name": st.text(max_size=70) | values,
            "token": st.sampled_from(tokens) | values,
            "kind": st.sampled_from(["joint", "mediation", "lecture", "party"])
            | values,
            "tracks": st.lists(st.sampled_from(["t1", "t2", ""]) | values, max_size=5)
            | values,
            "sdp": st.sampled_from(["v=0\r\n", "v=0 garbage", ""]) | values,
            "sources": values,
            "source": st.sampled_from(["camera", "microphone", "screen"]) | values,
            "candidate": values,
            "pc": st.sampled_from(["up", "down"]) | values,
            "on": values,
            "raised": values,
            "muted": values,
            "version": values,
            "subscribe": values,
            "id": values,
        },
    )

    def join_room_never_b(drawn: dict) -> dict:
        # A join into room B would be an ordinary participant of B, not a leak.
        if drawn["type"] == "join" and drawn.get("room") == ROOM_B:
            drawn["room"] = ROOM_A
        return drawn

    structured = message.map(join_room_never_b).map(
        lambda drawn: json.dumps(drawn, ensure_ascii=False)
    )
    huge = st.integers(min_value=60_000, max_value=200_000).map(
        lambda size: json.dumps({"type": "chat", "text": MARKER + "x" * size})
    )
    nested = st.integers(min_value=100, max_value=60_000).map(
        lambda depth: "[" * depth + "]" * depth
    )
    junk = st.text(max_size=200) | st.binary(max_size=200)
    raw = values.map(json.dumps)
    # Well-formed controls naming room B's participants.
    targeted = st.builds(
        lambda kind, peer: json.dumps({"type": kind, "peer": peer}),
        st.sampled_from(
            ["admit", "remove", "give-floor", "side-room", "roll-call", "mute-peer"]
        ),
        st.sampled_from(b_peers),
    )
    return st.one_of(
        structured, structured, structured, targeted, raw, junk, huge, nested
    )


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for item in value.values() for s in _strings(item)]
    if isinstance(value, list):
        return [s for item in value for s in _strings(item)]
    return []


def test_hostile_frames_keep_hub_up(hub, room_b):
    b_peers = [listener.peer for listener in room_b.values()]
    tokens = _tokens(token_for("mediator", ROOM_B))
    attacker = Attacker(hub.ws_url)
    started = time.monotonic()
    # Use the invite once, so later uses of it are replays.
    attacker.send(
        json.dumps({"type": "join", "room": ROOM_A, "name": "x", "token": tokens[0]}),
        joined=False,
    )

    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(frame=_frames(b_peers, tokens), joined=st.booleans())
    def throw(frame, joined):
        if time.monotonic() - started > scaled(TIME_BUDGET):
            return
        attacker.send(frame, joined)

    throw()

    # The hub is up and still serves room B.
    health = httpx.get(f"{hub.url}/healthz", timeout=scaled(5))
    assert health.status_code == 200
    for listener in room_b.values():
        listener.ping()
    deadline = time.monotonic() + scaled(10)
    for listener in room_b.values():
        while not any(m.get("id") == "alive" for m in listener.messages):
            assert listener.closed_code is None, f"B closed: {listener.closed_code}"
            assert time.monotonic() < deadline, "room B stopped answering"
            time.sleep(0.05)

    # Nothing about room A reached room B.
    assert attacker.side_a_peers, "the attacker never joined room A"
    assert not attacker.side_a_peers & set(b_peers)
    for name, listener in room_b.items():
        for message in listener.messages:
            strings = set(_strings(message))
            assert not strings & attacker.side_a_peers, f"{name} got {message}"
            assert ROOM_A not in strings, f"{name} got {message}"
            assert not any(MARKER in s for s in strings), f"{name} got {message}"
        kinds = {m["type"] for m in listener.messages}
        assert not kinds & {"removed", "admitted", "peer-left", "side-room"}, kinds
    # The attacker's forged peer ids never acted on room B.
    assert room_b["party"].joined["waiting"] is True
    assert attacker.codes.get("bad-message", 0) > 0
    assert attacker.codes.get("not-found", 0) > 0
