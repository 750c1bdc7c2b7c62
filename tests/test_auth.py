"""Tokens: minting, verification failures, single-use invites, `hub token`."""

from __future__ import annotations

import base64
import json
import logging
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest

from hub import cli
from hub.auth import (
    AUDIENCE,
    CLOCK_SKEW,
    DEVICE_TTL,
    InviteStore,
    TokenKind,
    load_secret,
    make_invite,
    mint_token,
    redeem_invite,
    verify_token,
)
from hub.config import ConfigError, load_config
from hub.errors import Unauthorized
from hub.org import load_org
from hub.roles import Role

ROOT = Path(__file__).resolve().parent.parent
SECRET = "test-secret-0123456789-abcdefghijklmnop"
OTHER_SECRET = "other-secret-0123456789-abcdefghijklmno"
T0 = datetime(2026, 3, 1, 8, 0, 0, tzinfo=UTC)


def _mint(**overrides):
    arguments = {
        "secret": SECRET,
        "user": "zhang.wei",
        "unit": "puer.simao",
        "role": "chair",
        "room": "simao-hall",
        "name": "张伟",
        "ttl": timedelta(hours=1),
        "now": T0,
    }
    arguments.update(overrides)
    return mint_token(**arguments)


def _forge(claims: dict, secret: str = SECRET) -> str:
    return jwt.encode(claims, secret, algorithm="HS256")


def _claims(**overrides) -> dict:
    claims = {
        "sub": "zhang.wei",
        "name": "张伟",
        "unit": "puer.simao",
        "role": "chair",
        "kind": "user",
        "iat": int(T0.timestamp()),
        "exp": int((T0 + timedelta(hours=1)).timestamp()),
        "jti": "abc123",
        "aud": AUDIENCE,
    }
    claims.update(overrides)
    return {key: value for key, value in claims.items() if value is not None}


def test_round_trip_identity():
    token = _mint()

    identity = verify_token(SECRET, token, "simao-hall", now=T0)

    assert identity.user == "zhang.wei"
    assert identity.name == "张伟"
    assert identity.unit == "puer.simao"
    assert identity.role is Role.CHAIR
    assert identity.room == "simao-hall"
    assert identity.kind is TokenKind.USER
    assert identity.issued_at == T0
    assert identity.expires_at == T0 + timedelta(hours=1)
    assert len(identity.jti) >= 16


def test_each_token_gets_its_own_jti():
    first = verify_token(SECRET, _mint(), now=T0)
    second = verify_token(SECRET, _mint(), now=T0)

    assert first.jti != second.jti


def test_name_defaults_to_user():
    identity = verify_token(SECRET, _mint(name=None), now=T0)

    assert identity.name == "zhang.wei"


def test_token_without_room_fits_any_room():
    token = _mint(room=None)

    identity = verify_token(SECRET, token, "puer-hall", now=T0)

    assert identity.room is None


def test_expired_token_names_time():
    token = _mint()
    later = T0 + timedelta(hours=2)

    with pytest.raises(Unauthorized) as caught:
        verify_token(SECRET, token, now=later)

    assert caught.value.code == "unauthorized"
    assert "token expired at 2026-03-01T09:00:00Z" in caught.value.message
    assert "ask for a new token" in caught.value.message


def test_expiry_tolerates_clock_skew():
    token = _mint()
    just_after = T0 + timedelta(hours=1) + CLOCK_SKEW - timedelta(seconds=1)

    identity = verify_token(SECRET, token, now=just_after)

    assert identity.user == "zhang.wei"


def test_token_from_future_rejected():
    token = _mint(now=T0 + timedelta(minutes=5))

    with pytest.raises(Unauthorized) as caught:
        verify_token(SECRET, token, now=T0)

    assert "issued in the future" in caught.value.message
    assert "clocks" in caught.value.message


def test_expired_token_rejected_with_real_clock():
    past = datetime.now(UTC) - timedelta(hours=3)
    token = _mint(now=past)

    with pytest.raises(Unauthorized) as caught:
        verify_token(SECRET, token)

    assert "token expired at" in caught.value.message


def test_tampered_payload_bad_signature():
    token = _mint(role="observer")
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["role"] = "chair"
    forged_payload = (
        base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    )
    tampered = f"{header}.{forged_payload}.{signature}"

    with pytest.raises(Unauthorized) as caught:
        verify_token(SECRET, tampered, now=T0)

    assert caught.value.message.startswith("bad signature")


def test_other_secret_bad_signature():
    token = _mint(secret=OTHER_SECRET)

    with pytest.raises(Unauthorized) as caught:
        verify_token(SECRET, token, now=T0)

    assert caught.value.message.startswith("bad signature")


def test_unsigned_token_rejected():
    header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=")
    payload = base64.urlsafe_b64encode(json.dumps(_claims()).encode()).rstrip(b"=")
    unsigned = f"{header.decode()}.{payload.decode()}."

    with pytest.raises(Unauthorized) as caught:
        verify_token(SECRET, unsigned, now=T0)

    assert "not signed with HS256" in caught.value.message


@pytest.mark.parametrize(
    "garbage",
    ["", "not-a-token", "a.b.c", "x" * 5000],
    ids=["empty", "word", "dots", "long"],
)
def test_garbage_token_rejected(garbage):
    with pytest.raises(Unauthorized) as caught:
        verify_token(SECRET, garbage, now=T0)

    assert caught.value.code == "unauthorized"
    assert caught.value.message


def test_wrong_room_names_both_rooms():
    token = _mint(room="simao-hall")

    with pytest.raises(Unauthorized) as caught:
        verify_token(SECRET, token, "puer-hall", now=T0)

    assert (
        "wrong room 'puer-hall' for token of room 'simao-hall'" in caught.value.message
    )


def test_unknown_role_rejected():
    token = _forge(_claims(role="emperor"))

    with pytest.raises(Unauthorized) as caught:
        verify_token(SECRET, token, now=T0)

    assert "unknown role 'emperor' in token" in caught.value.message


@pytest.mark.parametrize("claim", ["sub", "role", "kind", "exp", "jti"])
def test_missing_claim_rejected(claim):
    token = _forge(_claims(**{claim: None}))

    with pytest.raises(Unauthorized) as caught:
        verify_token(SECRET, token, now=T0)

    assert f"token lacks the claim {claim!r}" in caught.value.message


def test_other_audience_rejected():
    token = _forge(_claims(aud="another-system"))

    with pytest.raises(Unauthorized) as caught:
        verify_token(SECRET, token, now=T0)

    assert f"not issued for {AUDIENCE}" in caught.value.message


def test_party_token_without_room_rejected():
    token = _forge(_claims(role="party", unit=None))

    with pytest.raises(Unauthorized) as caught:
        verify_token(SECRET, token, now=T0)

    assert "party token without a room" in caught.value.message


def test_unit_outside_org_rejected():
    org = load_org(ROOT / "configs" / "org-puer.toml")
    token = _mint(unit="puer.atlantis")

    with pytest.raises(Unauthorized) as caught:
        verify_token(SECRET, token, org=org, now=T0)

    assert "unit 'puer.atlantis' of this token is not in the org tree" in (
        caught.value.message
    )
    assert verify_token(SECRET, _mint(), org=org, now=T0).unit == "puer.simao"


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"user": "张 伟"}, "invalid user id"),
        ({"unit": None}, "needs a unit id"),
        ({"role": "emperor"}, "unknown role 'emperor'"),
        ({"room": "simao hall"}, "invalid room id"),
        ({"name": ""}, "invalid display name"),
        ({"ttl": timedelta(0)}, "must be a positive timedelta"),
        ({"ttl": timedelta(days=40)}, "longer than the 31 days allowed for user"),
        ({"kind": "robot"}, "unknown token kind 'robot'"),
        ({"role": "party", "room": None, "unit": None}, "limited to one room"),
        ({"secret": "short"}, "HUB_AUTH_SECRET"),
    ],
)
def test_mint_rejects_bad_argument(overrides, expected):
    with pytest.raises(ValueError) as caught:
        _mint(**overrides)

    assert expected in str(caught.value)


def test_device_token_lives_a_year():
    token = _mint(kind="device", ttl=DEVICE_TTL, room=None)

    identity = verify_token(SECRET, token, now=T0 + timedelta(days=364))

    assert identity.kind is TokenKind.DEVICE
    assert identity.expires_at == T0 + DEVICE_TTL


def test_invite_path_carries_room_and_token():
    invite = make_invite(SECRET, "puer-mediation", "李某", timedelta(hours=2), now=T0)

    parts = urlsplit(invite.path)
    query = parse_qs(parts.query)

    assert parts.path == "/join"
    assert query["room"] == ["puer-mediation"]
    assert query["invite"] == [invite.token]
    assert invite.expires_at == T0 + timedelta(hours=2)


def test_invite_accepted_once():
    invites = InviteStore()
    invite = make_invite(SECRET, "puer-mediation", "李某", timedelta(hours=2), now=T0)

    identity = verify_token(
        SECRET, invite.token, "puer-mediation", invites=invites, now=T0
    )
    with pytest.raises(Unauthorized) as caught:
        verify_token(SECRET, invite.token, "puer-mediation", invites=invites, now=T0)

    assert identity.role is Role.PARTY
    assert identity.kind is TokenKind.INVITE
    assert identity.name == "李某"
    assert identity.unit is None
    assert identity.user.startswith("party-")
    assert "invite already used" in caught.value.message
    assert "new invite link" in caught.value.message


def test_invite_for_other_room_not_consumed():
    invites = InviteStore()
    invite = make_invite(SECRET, "puer-mediation", "李某", timedelta(hours=2), now=T0)

    with pytest.raises(Unauthorized) as caught:
        verify_token(SECRET, invite.token, "puer-hall", invites=invites, now=T0)
    identity = verify_token(
        SECRET, invite.token, "puer-mediation", invites=invites, now=T0
    )

    assert "wrong room 'puer-hall'" in caught.value.message
    assert identity.room == "puer-mediation"


def test_invite_needs_store():
    invite = make_invite(SECRET, "puer-mediation", "李某", timedelta(hours=2), now=T0)

    with pytest.raises(Unauthorized) as caught:
        verify_token(SECRET, invite.token, "puer-mediation", now=T0)

    assert "invite tokens are accepted only" in caught.value.message


def test_expired_invite_rejected_before_store():
    invites = InviteStore()
    invite = make_invite(SECRET, "puer-mediation", "李某", timedelta(hours=2), now=T0)

    with pytest.raises(Unauthorized) as caught:
        verify_token(
            SECRET,
            invite.token,
            invites=invites,
            now=T0 + timedelta(hours=3),
        )

    assert "token expired at" in caught.value.message
    assert len(invites) == 0


def test_redeemed_invite_gives_session_token():
    invites = InviteStore()
    invite = make_invite(SECRET, "puer-mediation", "李某", timedelta(hours=1), now=T0)

    identity, session = redeem_invite(
        SECRET, invite.token, invites, "puer-mediation", now=T0
    )
    reconnect = verify_token(
        SECRET, session, "puer-mediation", now=T0 + timedelta(hours=3)
    )

    assert reconnect.user == identity.user
    assert reconnect.role is Role.PARTY
    assert reconnect.kind is TokenKind.USER
    with pytest.raises(Unauthorized, match="wrong room 'puer-hall'"):
        verify_token(SECRET, session, "puer-hall", now=T0)
    with pytest.raises(Unauthorized, match="invite already used"):
        redeem_invite(SECRET, invite.token, invites, "puer-mediation", now=T0)


def test_redeem_rejects_plain_token():
    with pytest.raises(Unauthorized) as caught:
        redeem_invite(SECRET, _mint(), InviteStore(), now=T0)

    assert "is not an invite" in caught.value.message


def test_invite_rejected_on_second_hub_process():
    shared: dict[str, datetime] = {}

    def persist(jti: str, expires_at: datetime) -> bool:
        if jti in shared:
            return False
        shared[jti] = expires_at
        return True

    first_hub = InviteStore(persist)
    second_hub = InviteStore(persist)
    invite = make_invite(SECRET, "puer-mediation", "李某", timedelta(hours=2), now=T0)

    verify_token(SECRET, invite.token, invites=first_hub, now=T0)
    with pytest.raises(Unauthorized, match="invite already used"):
        verify_token(SECRET, invite.token, invites=second_hub, now=T0)

    assert invite.jti in shared
    assert second_hub.is_used(invite.jti)


def test_invite_unused_when_persistence_fails():
    failing = True

    def persist(jti: str, expires_at: datetime) -> bool:
        if failing:
            raise ConnectionError("storage unreachable")
        return True

    invites = InviteStore(persist)
    invite = make_invite(SECRET, "puer-mediation", "李某", timedelta(hours=2), now=T0)

    with pytest.raises(ConnectionError):
        verify_token(SECRET, invite.token, invites=invites, now=T0)
    failing = False
    identity = verify_token(SECRET, invite.token, invites=invites, now=T0)

    assert identity.kind is TokenKind.INVITE


def test_invite_race_has_one_winner():
    invites = InviteStore()
    invite = make_invite(SECRET, "puer-mediation", "李某", timedelta(hours=2), now=T0)
    workers = 8
    barrier = threading.Barrier(workers)
    outcomes: list[str] = []
    outcomes_lock = threading.Lock()

    def attempt() -> None:
        barrier.wait(timeout=10)
        try:
            verify_token(SECRET, invite.token, invites=invites, now=T0)
            result = "accepted"
        except Unauthorized:
            result = "rejected"
        with outcomes_lock:
            outcomes.append(result)

    threads = [threading.Thread(target=attempt) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)

    assert outcomes.count("accepted") == 1
    assert outcomes.count("rejected") == workers - 1


def test_store_forgets_expired_invites():
    invites = InviteStore()
    invites.redeem("old", T0, now=T0)
    invites.redeem("new", T0 + timedelta(days=1), now=T0)

    invites.redeem("later", T0 + timedelta(days=2), now=T0 + timedelta(hours=1))

    assert not invites.is_used("old")
    assert invites.is_used("new")
    assert len(invites) == 2


def test_store_load_restores_used_invites():
    invites = InviteStore()
    invite = make_invite(SECRET, "puer-mediation", "李某", timedelta(hours=2), now=T0)

    invites.load([(invite.jti, invite.expires_at)])

    with pytest.raises(Unauthorized, match="invite already used"):
        verify_token(SECRET, invite.token, invites=invites, now=T0)


def _config_file(tmp_path: Path, required: bool, secret: str = "") -> Path:
    path = tmp_path / "hub.toml"
    org_file = ROOT / "configs" / "org-puer.toml"
    path.write_text(
        f'[auth]\nrequired = {str(required).lower()}\nsecret = "{secret}"\n'
        f"[org]\nfile = {json.dumps(str(org_file))}\n",
        encoding="utf-8",
    )
    return path


def test_required_auth_without_secret_names_env(tmp_path, monkeypatch):
    monkeypatch.delenv("HUB_AUTH_SECRET", raising=False)
    config = load_config(_config_file(tmp_path, required=True))

    with pytest.raises(ConfigError) as caught:
        load_secret(config)

    assert "HUB_AUTH_SECRET" in str(caught.value)
    assert "auth.required is true" in str(caught.value)


def test_short_secret_rejected(tmp_path, monkeypatch):
    monkeypatch.setenv("HUB_AUTH_SECRET", "too-short")
    config = load_config(_config_file(tmp_path, required=True))

    with pytest.raises(ConfigError) as caught:
        load_secret(config)

    assert "is 9 bytes" in str(caught.value)
    assert "HUB_AUTH_SECRET" in str(caught.value)


def test_optional_auth_without_secret(tmp_path, monkeypatch):
    monkeypatch.delenv("HUB_AUTH_SECRET", raising=False)
    config = load_config(_config_file(tmp_path, required=False))

    assert load_secret(config) is None


def test_env_secret_overrides_file(tmp_path, monkeypatch):
    monkeypatch.setenv("HUB_AUTH_SECRET", SECRET)
    config = load_config(_config_file(tmp_path, required=True, secret="x" * 40))

    assert load_secret(config) == SECRET


def _run_cli(capsys, *arguments: str) -> tuple[int, str, str]:
    status = cli.main(["token", *arguments])
    output = capsys.readouterr()
    return status, output.out.strip(), output.err.strip()


def test_cli_token_verifies(tmp_path, monkeypatch, capsys, caplog):
    monkeypatch.setenv("HUB_AUTH_SECRET", SECRET)
    config = _config_file(tmp_path, required=True)
    caplog.set_level(logging.DEBUG)

    status, token, _ = _run_cli(
        capsys,
        "--config",
        str(config),
        "--user",
        "wang.fang",
        "--unit",
        "puer.ninger",
        "--role",
        "dispatcher",
        "--room",
        "puer-joint",
        "--name",
        "王芳",
        "--hours",
        "2",
    )
    identity = verify_token(SECRET, token, "puer-joint")

    assert status == 0
    assert identity.user == "wang.fang"
    assert identity.unit == "puer.ninger"
    assert identity.role is Role.DISPATCHER
    assert identity.name == "王芳"
    assert identity.expires_at - identity.issued_at == timedelta(hours=2)
    assert token not in caplog.text
    assert "token minted user=wang.fang" in caplog.text


def test_cli_device_token(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HUB_AUTH_SECRET", SECRET)
    config = _config_file(tmp_path, required=False)

    status, token, _ = _run_cli(
        capsys,
        "--config",
        str(config),
        "--user",
        "simao-hall-terminal",
        "--unit",
        "puer.simao",
        "--role",
        "member",
        "--device",
    )
    identity = verify_token(SECRET, token)

    assert status == 0
    assert identity.kind is TokenKind.DEVICE
    assert identity.expires_at - identity.issued_at == DEVICE_TTL


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        (
            ["--unit", "puer.atlantis", "--role", "chair"],
            "unit 'puer.atlantis' not found in the org tree",
        ),
        (["--unit", "puer", "--role", "emperor"], "unknown role 'emperor'"),
        (["--unit", "puer", "--role", "chair", "--hours", "0"], "more than 0"),
        (["--unit", "puer", "--role", "chair", "--hours", "900"], "longer than"),
        (["--unit", "puer", "--role", "party"], "limited to one room"),
    ],
)
def test_cli_rejects_bad_input(tmp_path, monkeypatch, capsys, arguments, expected):
    monkeypatch.setenv("HUB_AUTH_SECRET", SECRET)
    config = _config_file(tmp_path, required=True)

    status, out, err = _run_cli(
        capsys, "--config", str(config), "--user", "zhang.wei", *arguments
    )

    assert status == 2
    assert out == ""
    assert err.startswith("hub token: ")
    assert expected in err


def test_cli_without_secret_names_env(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("HUB_AUTH_SECRET", raising=False)
    config = _config_file(tmp_path, required=False)

    status, out, err = _run_cli(
        capsys,
        "--config",
        str(config),
        "--user",
        "zhang.wei",
        "--unit",
        "puer",
        "--role",
        "chair",
    )

    assert status == 2
    assert out == ""
    assert "HUB_AUTH_SECRET" in err


def test_cli_room_outside_org_warns(tmp_path, monkeypatch, capsys, caplog):
    monkeypatch.setenv("HUB_AUTH_SECRET", SECRET)
    config = _config_file(tmp_path, required=True)

    status, token, _ = _run_cli(
        capsys,
        "--config",
        str(config),
        "--user",
        "zhang.wei",
        "--unit",
        "puer",
        "--role",
        "chair",
        "--room",
        "case-2026-017",
    )

    assert status == 0
    assert verify_token(SECRET, token, "case-2026-017").room == "case-2026-017"
    assert "room=case-2026-017 is not a standing room" in caplog.text
