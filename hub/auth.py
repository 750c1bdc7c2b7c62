"""Signed access tokens (JWT, HS256) and single-use invite links.

A token names who connects (user id, display name, unit), the role they hold,
and optionally the one room it is limited to. There are three kinds:

- "user": a person's token, hours to weeks long;
- "device": a command-room terminal's token, up to a year long;
- "invite": a hearing party's link to one mediation room, accepted once.

Claims: `sub` (user id), `name`, `unit` (absent for hearing parties without a unit),
`role`, `room` (absent when any room is allowed), `kind`, `iat`, `exp`, `jti`,
and `aud` = "zongzhi-hub". Tokens and the secret are never logged.
"""

from __future__ import annotations

import heapq
import logging
import math
import re
import secrets
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import jwt

from hub.config import ConfigError
from hub.errors import NotFound, Unauthorized
from hub.org import load_org
from hub.roles import Role

if TYPE_CHECKING:
    from hub.config import Config
    from hub.org import Org

logger = logging.getLogger(__name__)

SECRET_ENV = "HUB_AUTH_SECRET"
# HS256 keys shorter than the SHA-256 output (32 bytes) weaken the MAC
# (RFC 7518, section 3.2 requires at least 256 bits).
MIN_SECRET_BYTES = 32
ALGORITHM = "HS256"
AUDIENCE = "zongzhi-hub"
# Tolerated clock difference between the machine that minted a token and the
# one that checks it.
CLOCK_SKEW = timedelta(seconds=30)
MAX_TOKEN_LENGTH = 4096
DEVICE_TTL = timedelta(days=365)
INVITE_PATH = "/join"

_ID_PATTERN = re.compile(r"[A-Za-z0-9_.@-]{1,64}")
_ROOM_PATTERN = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_MAX_NAME_LENGTH = 64
_REQUIRED_CLAIMS = ["sub", "name", "role", "kind", "iat", "exp", "jti"]


class TokenKind(StrEnum):
    USER = "user"
    DEVICE = "device"
    INVITE = "invite"


MAX_TTL = {
    TokenKind.USER: timedelta(days=31),
    TokenKind.DEVICE: timedelta(days=366),
    TokenKind.INVITE: timedelta(days=7),
}
"""Maximum lifetime of a token of each kind."""


@dataclass(frozen=True, slots=True)
class Identity:
    """Holder of a verified token and the access the token grants."""

    user: str
    name: str
    unit: str | None
    role: Role
    room: str | None
    kind: TokenKind
    jti: str
    issued_at: datetime
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class Invite:
    """A single-use invite token and the link path that carries it."""

    token: str
    path: str
    room: str
    jti: str
    expires_at: datetime


def load_secret(config: Config) -> str | None:
    """Return the token signing secret from the configuration, or None if unset.

    The secret comes from auth.secret, which HUB_AUTH_SECRET overrides. Raises
    ConfigError when auth.required is true and no secret is set, and whenever
    the secret is shorter than MIN_SECRET_BYTES.
    """
    secret = config.auth.secret
    if not secret:
        if config.auth.required:
            raise ConfigError(
                f"auth.required is true but no token signing secret is set; set "
                f"the {SECRET_ENV} environment variable to a random string of at "
                f"least {MIN_SECRET_BYTES} bytes, for example the output of "
                "python3 -c 'import secrets; print(secrets.token_urlsafe(48))'"
            )
        return None
    _check_secret(secret)
    return secret


def mint_token(
    secret: str,
    user: str,
    unit: str | None,
    role: str,
    room: str | None = None,
    name: str | None = None,
    ttl: timedelta = timedelta(hours=12),
    kind: str = TokenKind.USER,
    *,
    now: datetime | None = None,
) -> str:
    """Sign a token for `user` of `unit` holding `role`.

    `room` limits the token to one room (required for the role "party" and for
    invites). `name` is the display name (the user id if None). `ttl` is the
    lifetime, at most MAX_TTL for the kind. `now` replaces the current time.
    Raises ValueError naming the invalid argument.
    """
    token, _ = _mint(secret, user, unit, role, room, name, ttl, kind, now)
    return token


def verify_token(
    secret: str,
    token: str,
    room: str | None = None,
    *,
    invites: InviteStore | None = None,
    org: Org | None = None,
    now: datetime | None = None,
) -> Identity:
    """Check a token's signature and claims and return whom it identifies.

    With `room`, a token limited to another room is rejected. An invite token
    is accepted only with an `invites` store, and is marked used there, so a
    second use fails. With `org`, the token's unit must be in the tree. `now`
    replaces the current time. Raises Unauthorized with the reason.
    """
    _check_secret(secret)
    if not isinstance(token, str) or not token:
        raise Unauthorized("missing token; sign in again to get one")
    if len(token) > MAX_TOKEN_LENGTH:
        raise Unauthorized(
            f"token is {len(token)} characters, longer than the limit of "
            f"{MAX_TOKEN_LENGTH}; pass the token exactly as issued"
        )
    claims = _decode(secret, token)
    identity = _identity_from_claims(claims, _now(now))

    if room is not None and identity.room is not None and room != identity.room:
        raise Unauthorized(
            f"wrong room {room!r} for token of room {identity.room!r}; join room "
            f"{identity.room!r} or ask for a token for {room!r}"
        )
    if org is not None and identity.unit is not None and identity.unit not in org:
        raise Unauthorized(
            f"unit {identity.unit!r} of this token is not in the org tree "
            f"{org.source}; ask for a new token with a current unit id"
        )
    if identity.kind is TokenKind.INVITE:
        if invites is None:
            raise Unauthorized(
                "invite tokens are accepted only when joining through the invite "
                "link; open the link you were sent"
            )
        invites.redeem(identity.jti, identity.expires_at, now=now)
        logger.info(
            "invite redeemed room=%s user=%s jti=%s",
            identity.room,
            identity.user,
            identity.jti,
        )
    return identity


class InviteStore:
    """The set of redeemed invite ids, so each invite token is accepted once.

    `persist`, if given, is called as persist(jti, expires_at) while the store
    is locked, and must atomically record the id in shared storage and return
    True, or return False if the id was recorded before (by this or another hub
    process). A Redis `SET key 1 NX EXAT <expiry>` or a database insert into a
    table with a unique jti column fits. It runs on the caller's thread, so it
    must be quick. If it raises, the invite stays unused and the error
    propagates. Entries are dropped once their invite has expired, because
    verification rejects an expired invite before it gets here.
    """

    def __init__(self, persist: Callable[[str, datetime], bool] | None = None) -> None:
        self._persist = persist
        self._lock = threading.Lock()
        self._used: dict[str, datetime] = {}
        self._expiries: list[tuple[datetime, str]] = []

    def __len__(self) -> int:
        return len(self._used)

    def is_used(self, jti: str) -> bool:
        """Return whether the invite with this id was redeemed in this store."""
        with self._lock:
            return jti in self._used

    def load(self, used: Iterable[tuple[str, datetime]]) -> None:
        """Mark invites redeemed before, such as ids read back from storage."""
        with self._lock:
            for jti, expires_at in used:
                self._add(jti, expires_at)

    def redeem(
        self, jti: str, expires_at: datetime, *, now: datetime | None = None
    ) -> None:
        """Mark the invite `jti` used, or raise Unauthorized if it already was."""
        with self._lock:
            self._prune(_now(now))
            if jti in self._used:
                raise _invite_used(jti)
            if self._persist is not None and not self._persist(jti, expires_at):
                self._add(jti, expires_at)
                raise _invite_used(jti)
            self._add(jti, expires_at)

    def _add(self, jti: str, expires_at: datetime) -> None:
        if jti not in self._used:
            self._used[jti] = expires_at
            heapq.heappush(self._expiries, (expires_at, jti))

    def _prune(self, now: datetime) -> None:
        while self._expiries and self._expiries[0][0] + CLOCK_SKEW < now:
            _, jti = heapq.heappop(self._expiries)
            self._used.pop(jti, None)


def make_invite(
    secret: str,
    room: str,
    name: str,
    ttl: timedelta,
    *,
    unit: str | None = None,
    now: datetime | None = None,
) -> Invite:
    """Mint a single-use invite for a hearing party named `name` to `room`.

    The party gets the role "party" and a user id of its own. `unit` is the
    unit the party is attached to, if any. The returned path is
    `/join?room=<room>&invite=<token>`; put it after the hub's origin to make
    the link. Raises ValueError naming the invalid argument.
    """
    user = f"party-{secrets.token_hex(4)}"
    token, claims = _mint(
        secret, user, unit, Role.PARTY, room, name, ttl, TokenKind.INVITE, now
    )
    path = f"{INVITE_PATH}?{urlencode({'room': room, 'invite': token})}"
    logger.info(
        "invite made room=%s user=%s jti=%s expires=%s",
        room,
        user,
        claims["jti"],
        _format_time(claims["exp"]),
    )
    return Invite(
        token=token,
        path=path,
        room=room,
        jti=claims["jti"],
        expires_at=datetime.fromtimestamp(claims["exp"], UTC),
    )


def redeem_invite(
    secret: str,
    token: str,
    invites: InviteStore,
    room: str | None = None,
    *,
    session_ttl: timedelta = timedelta(hours=4),
    now: datetime | None = None,
) -> tuple[Identity, str]:
    """Accept an invite once and return the party's identity and session token.

    The session token is a "user" token for the same party and room, valid for
    `session_ttl`, so the party can reconnect after the invite is used up.
    Raises Unauthorized if the token is not a valid, unused invite for `room`.
    """
    identity = verify_token(secret, token, room, invites=invites, now=now)
    if identity.kind is not TokenKind.INVITE:
        raise Unauthorized(
            f"token of kind {identity.kind.value!r} is not an invite; "
            "open the invite link you were sent"
        )
    session_token = mint_token(
        secret,
        identity.user,
        identity.unit,
        identity.role,
        room=identity.room,
        name=identity.name,
        ttl=session_ttl,
        kind=TokenKind.USER,
        now=now,
    )
    return identity, session_token


def mint_token_from_cli(config: Config, args: Any) -> str:
    """Mint a token for `hub token` and return it.

    `args` carries user, unit, role, room, name, hours and device. A device
    token lasts DEVICE_TTL regardless of `hours`. The unit must be in the org
    tree of config.org.file. Raises ValueError (ConfigError for configuration
    problems) with a message for the operator.
    """
    secret = load_secret(config)
    if secret is None:
        raise ConfigError(
            f"cannot sign a token: no secret is set; set the {SECRET_ENV} "
            f"environment variable to a random string of at least "
            f"{MIN_SECRET_BYTES} bytes, the same one the hub runs with"
        )
    if not config.org.file:
        raise ConfigError(
            "org.file is not set; point it to the organisation tree, such as "
            "configs/org-puer.toml"
        )
    org = load_org(config.resolve(config.org.file))

    try:
        unit = org.unit(args.unit)
    except NotFound as exc:
        raise ValueError(exc.message) from None
    role = _parse_role(args.role)
    room = getattr(args, "room", None) or None
    if room is not None:
        try:
            org.room(room)
        except NotFound:
            logger.warning(
                "room=%s is not a standing room of the org tree %s; the token is "
                "limited to it anyway",
                room,
                org.source,
            )

    if getattr(args, "device", False):
        kind = TokenKind.DEVICE
        ttl = DEVICE_TTL
    else:
        kind = TokenKind.USER
        hours = args.hours
        if not isinstance(hours, (int, float)) or not math.isfinite(hours):
            raise ValueError(f"--hours must be a number, got {hours!r}")
        if hours <= 0:
            raise ValueError(f"--hours must be more than 0, got {hours}")
        ttl = timedelta(hours=hours)

    token, claims = _mint(
        secret,
        args.user,
        unit.id,
        role,
        room,
        getattr(args, "name", None),
        ttl,
        kind,
        None,
    )
    logger.info(
        "token minted user=%s unit=%s role=%s room=%s kind=%s jti=%s expires=%s",
        claims["sub"],
        unit.id,
        role.value,
        room or "*",
        kind.value,
        claims["jti"],
        _format_time(claims["exp"]),
    )
    return token


def _mint(
    secret: str,
    user: str,
    unit: str | None,
    role: str,
    room: str | None,
    name: str | None,
    ttl: timedelta,
    kind: str,
    now: datetime | None,
) -> tuple[str, dict[str, Any]]:
    _check_secret(secret)
    token_kind = _parse_kind(kind)
    role_value = _parse_role(role)
    if not isinstance(user, str) or not _ID_PATTERN.fullmatch(user):
        raise ValueError(
            f"invalid user id {user!r}; use 1 to 64 ASCII letters, digits, "
            "'.', '_', '@' or '-', such as 'zhang.wei'"
        )
    if unit is None:
        if role_value is not Role.PARTY:
            raise ValueError(
                f"a token for the role {role_value.value!r} needs a unit id; "
                "only hearing parties may have none"
            )
    elif not isinstance(unit, str) or not unit:
        raise ValueError(f"invalid unit id {unit!r}; use an id from the org tree")
    if room is not None and (
        not isinstance(room, str) or not _ROOM_PATTERN.fullmatch(room)
    ):
        raise ValueError(
            f"invalid room id {room!r}; use 1 to 64 ASCII letters, digits, "
            "'-', '_' or '.'"
        )
    if room is None and (role_value is Role.PARTY or token_kind is TokenKind.INVITE):
        raise ValueError(
            "a party token must be limited to one room; pass the mediation room id"
        )
    if token_kind is TokenKind.INVITE and role_value is not Role.PARTY:
        raise ValueError(f"invites are for the role 'party', got {role_value.value!r}")
    display_name = user if name is None else name
    if (
        not isinstance(display_name, str)
        or not display_name.strip()
        or len(display_name) > _MAX_NAME_LENGTH
    ):
        raise ValueError(
            f"invalid display name {display_name!r}; use 1 to {_MAX_NAME_LENGTH} "
            "characters"
        )
    if not isinstance(ttl, timedelta) or ttl <= timedelta(0):
        raise ValueError(f"token lifetime must be a positive timedelta, got {ttl!r}")
    if ttl > MAX_TTL[token_kind]:
        raise ValueError(
            f"token lifetime {ttl} is longer than the {MAX_TTL[token_kind].days} "
            f"days allowed for {token_kind.value} tokens; use a device token for "
            "a command-room terminal"
        )

    issued = int(_now(now).timestamp())
    claims: dict[str, Any] = {
        "sub": user,
        "name": display_name.strip(),
        "role": role_value.value,
        "kind": token_kind.value,
        "iat": issued,
        "exp": issued + max(1, int(ttl.total_seconds())),
        "jti": secrets.token_urlsafe(16),
        "aud": AUDIENCE,
    }
    if unit is not None:
        claims["unit"] = unit
    if room is not None:
        claims["room"] = room
    return jwt.encode(claims, secret, algorithm=ALGORITHM), claims


def _decode(secret: str, token: str) -> dict[str, Any]:
    try:
        return jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            audience=AUDIENCE,
            # Expiry and issue time are checked by _identity_from_claims, which
            # names the time in its message and honours an injected clock.
            options={
                "require": _REQUIRED_CLAIMS,
                "verify_exp": False,
                "verify_iat": False,
            },
        )
    except jwt.InvalidSignatureError:
        raise Unauthorized(
            "bad signature: the token was altered or signed with another secret; "
            "ask for a new token"
        ) from None
    except jwt.InvalidAlgorithmError:
        raise Unauthorized(
            f"token is not signed with {ALGORITHM}; ask for a new token"
        ) from None
    except jwt.MissingRequiredClaimError as exc:
        raise Unauthorized(
            f"token lacks the claim {exc.claim!r}; ask for a new token"
        ) from None
    except jwt.InvalidAudienceError:
        raise Unauthorized(
            f"token is not issued for {AUDIENCE}; ask for a token of this hub"
        ) from None
    except jwt.InvalidTokenError as exc:
        raise Unauthorized(
            f"malformed token ({exc}); pass the token exactly as issued"
        ) from None


def _identity_from_claims(claims: dict[str, Any], now: datetime) -> Identity:
    for claim in ("sub", "name", "role", "kind", "jti"):
        if not isinstance(claims[claim], str) or not claims[claim]:
            raise Unauthorized(f"token claim {claim!r} must be a non-empty string")
    for claim in ("unit", "room"):
        if claims.get(claim) is not None and not isinstance(claims[claim], str):
            raise Unauthorized(f"token claim {claim!r} must be a string")
    for claim in ("iat", "exp"):
        if isinstance(claims[claim], bool) or not isinstance(claims[claim], int):
            raise Unauthorized(f"token claim {claim!r} must be an integer time")

    expires_at = datetime.fromtimestamp(claims["exp"], UTC)
    issued_at = datetime.fromtimestamp(claims["iat"], UTC)
    if expires_at <= now - CLOCK_SKEW:
        raise Unauthorized(
            f"token expired at {_format_time(claims['exp'])}; ask for a new token"
        )
    if issued_at > now + CLOCK_SKEW:
        raise Unauthorized(
            f"token issued in the future, at {_format_time(claims['iat'])}; "
            "check the clocks of the hub machines"
        )
    try:
        role = Role(claims["role"])
    except ValueError:
        raise Unauthorized(
            f"unknown role {claims['role']!r} in token; roles are "
            f"{', '.join(member.value for member in Role)}; ask for a new token"
        ) from None
    try:
        kind = TokenKind(claims["kind"])
    except ValueError:
        raise Unauthorized(
            f"unknown token kind {claims['kind']!r}; kinds are "
            f"{', '.join(member.value for member in TokenKind)}"
        ) from None
    room = claims.get("room")
    if room is None and (role is Role.PARTY or kind is TokenKind.INVITE):
        raise Unauthorized("party token without a room; ask for a new invite")
    return Identity(
        user=claims["sub"],
        name=claims["name"],
        unit=claims.get("unit"),
        role=role,
        room=room,
        kind=kind,
        jti=claims["jti"],
        issued_at=issued_at,
        expires_at=expires_at,
    )


def _check_secret(secret: str) -> None:
    if not isinstance(secret, str) or len(secret.encode()) < MIN_SECRET_BYTES:
        length = len(secret.encode()) if isinstance(secret, str) else 0
        raise ConfigError(
            f"the token signing secret is {length} bytes; set {SECRET_ENV} to a "
            f"random string of at least {MIN_SECRET_BYTES} bytes"
        )


def _parse_role(role: object) -> Role:
    try:
        return Role(role)
    except ValueError:
        raise ValueError(
            f"unknown role {role!r}; use one of: "
            f"{', '.join(member.value for member in Role)}"
        ) from None


def _parse_kind(kind: object) -> TokenKind:
    try:
        return TokenKind(kind)
    except ValueError:
        raise ValueError(
            f"unknown token kind {kind!r}; use one of: "
            f"{', '.join(member.value for member in TokenKind)}"
        ) from None


def _invite_used(jti: str) -> Unauthorized:
    return Unauthorized(
        f"invite already used (invite id {jti[:8]}...); ask the mediator for a "
        "new invite link"
    )


def _now(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    if now.tzinfo is None:
        raise ValueError(f"time {now!r} has no time zone; pass an aware datetime")
    return now


def _format_time(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
