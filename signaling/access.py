"""Access to rooms: tokens at join, the session kind of a room, default roles
for joins without a token, and invite links for hearing parties
(POST /api/invites, GET /join).

The join is checked in two steps so that a refused join never uses up an
invite: `identify` verifies the token without side effects, the signaling
service checks the room (lock, kind, role), then `redeem` marks an invite used
and mints the party's session token.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from types import MappingProxyType
from typing import TYPE_CHECKING
from urllib.parse import urlencode

import jwt
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from hub.auth import (
    INVITE_PATH,
    Identity,
    InviteStore,
    TokenKind,
    load_secret,
    make_invite,
    redeem_invite,
    verify_token,
)
from hub.errors import (
    Conflict,
    Forbidden,
    HubError,
    NotFound,
    ProtocolError,
    Unauthorized,
)
from hub.org import Org, load_org
from hub.roles import Action, Role, SessionKind, is_allowed

if TYPE_CHECKING:
    from hub.config import Config
    from hub.rooms import Room, RoomManager

logger = logging.getLogger(__name__)

DEFAULT_ROLES: Mapping[SessionKind, Role] = MappingProxyType(
    {
        # A command room joining a joint session reports like any member room.
        SessionKind.JOINT: Role.MEMBER,
        # Someone without a token in a hearing is treated as a party: they
        # wait until the mediator lets them in.
        SessionKind.MEDIATION: Role.PARTY,
        # A lecture audience watches and speaks only when given the floor.
        SessionKind.LECTURE: Role.VIEWER,
    }
)
"""Role of a participant who joins without a token, by session kind."""

INVITE_TTL = timedelta(hours=24)
MAX_INVITE_HOURS = 7 * 24
SESSION_TTL = timedelta(hours=4)
MAX_INVITE_BODY_BYTES = 4096
_STATUS = {
    "bad-message": 400,
    "bad-json": 400,
    "unauthorized": 401,
    "forbidden": 403,
    "not-found": 404,
    "conflict": 409,
}


@dataclass(frozen=True)
class Admission:
    """Outcome of checking a join's token: who joins and in which role."""

    role: Role
    identity: Identity | None = None
    token: str | None = None

    @property
    def is_invite(self) -> bool:
        return self.identity is not None and self.identity.kind is TokenKind.INVITE


class Access:
    """Token checks and room kinds for one hub process."""

    def __init__(
        self,
        *,
        required: bool = False,
        secret: str | None = None,
        org: Org | None = None,
        invites: InviteStore | None = None,
        default_roles: Mapping[SessionKind, Role] = DEFAULT_ROLES,
        session_ttl: timedelta = SESSION_TTL,
    ) -> None:
        if required and not secret:
            raise ValueError("auth is required but no token signing secret is given")
        self.required = required
        self.secret = secret
        self.org = org
        # Used invites are remembered in this process unless the app passes a
        # shared store (hub/shared.py, with bus.redis_url).
        self.invites = invites if invites is not None else InviteStore()
        self.default_roles = dict(default_roles)
        self.session_ttl = session_ttl

    @classmethod
    def from_config(cls, config: Config) -> Access:
        """Build from auth.required, the secret (auth.secret or
        HUB_AUTH_SECRET) and the org tree of org.file, if set."""
        org = load_org(config.resolve(config.org.file)) if config.org.file else None
        return cls(required=config.auth.required, secret=load_secret(config), org=org)

    # --- rooms ----------------------------------------------------------------

    def room_kind(
        self, room_id: str, requested: str | None, open_room: Room | None
    ) -> tuple[SessionKind, str]:
        """Return the session kind and title of `room_id`.

        A room of the org tree runs the kind the tree names. Another room runs
        the kind it was opened with, or `requested` (the join's `kind`), or
        joint. Raises Conflict when `requested` differs from the room's kind.
        """
        kind: SessionKind | None = None
        title = ""
        where = ""
        if self.org is not None:
            try:
                tree_room = self.org.room(room_id)
            except NotFound:
                tree_room = None
            if tree_room is not None:
                kind, title = tree_room.kind, tree_room.name
                where = f"the org tree {self.org.source}"
        if kind is None and open_room is not None:
            kind, title = open_room.kind, open_room.title
            where = "the participants already in it"
        if kind is None:
            return SessionKind(requested or SessionKind.JOINT), ""
        if requested is not None and requested != kind.value:
            raise Conflict(
                f"room {room_id!r} runs a {kind.value} session (set by {where}), "
                f"not {requested}; join without 'kind' or use another room id"
            )
        return kind, title

    # --- tokens ---------------------------------------------------------------

    def identify(self, token: str | None, room_id: str, kind: SessionKind) -> Admission:
        """Check the join's token and return the role it grants, without
        using up an invite. Raises Unauthorized with the reason."""
        if token is None:
            if self.required:
                raise Unauthorized(
                    "missing token: this hub admits only signed-in participants; "
                    "open the link you were given or ask the operator for a token"
                )
            return Admission(role=self.default_roles[kind])
        if self.secret is None:
            raise Unauthorized(
                "this hub has no token signing secret, so it cannot check the "
                "token; join without a token or ask the operator to set "
                "HUB_AUTH_SECRET"
            )
        if _unverified_kind(token) == TokenKind.INVITE.value:
            # A scratch store lets verify_token check the invite fully without
            # marking it used; `redeem` uses the real store.
            identity = verify_token(
                self.secret, token, room_id, invites=InviteStore(), org=self.org
            )
            if self.invites.is_used(identity.jti):
                raise Unauthorized(
                    f"invite already used (invite id {identity.jti[:8]}...); ask "
                    "the mediator for a new invite link"
                )
        else:
            identity = verify_token(self.secret, token, room_id, org=self.org)
        return Admission(role=identity.role, identity=identity)

    def redeem(self, admission: Admission, token: str | None, room_id: str) -> str:
        """Mark an invite used and return the party's session token, which
        the client uses for later joins. Raises Unauthorized if another join
        used the invite first."""
        if not admission.is_invite or token is None or self.secret is None:
            raise ValueError("redeem() takes the admission of an invite token")
        _identity, session_token = redeem_invite(
            self.secret,
            token,
            self.invites,
            room_id,
            session_ttl=self.session_ttl,
        )
        return session_token

    def bearer(self, request: Request, room_id: str) -> Identity:
        """Return the identity of the request's `Authorization: Bearer` token."""
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized(
                "missing 'Authorization: Bearer <token>' header; send the "
                "mediator's or chair's token"
            )
        if self.secret is None:
            raise Unauthorized(
                "this hub has no token signing secret, so it cannot check tokens "
                "or sign invites; ask the operator to set HUB_AUTH_SECRET"
            )
        return verify_token(self.secret, token.strip(), room_id, org=self.org)


def _unverified_kind(token: str) -> str | None:
    # Only picks the verification path; verify_token checks everything.
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.InvalidTokenError:
        return None
    kind = claims.get("kind") if isinstance(claims, dict) else None
    return kind if isinstance(kind, str) else None


# --- HTTP -------------------------------------------------------------------


def _error_response(exc: HubError) -> JSONResponse:
    status = _STATUS.get(exc.code, 400)
    return JSONResponse(
        {"error": {"code": exc.code, "message": exc.message}}, status_code=status
    )


def _invite_request(body: object) -> tuple[str, str, float, str | None]:
    if not isinstance(body, dict):
        raise ProtocolError(
            'expected a JSON object such as {"room": "puer-mediation", "name": '
            '"李某某"}'
        )
    room = body.get("room")
    if not isinstance(room, str) or not room:
        raise ProtocolError(f"field 'room' must be a room id string, got {room!r}")
    name = body.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 64:
        raise ProtocolError(
            f"field 'name' must be the party's display name, 1 to 64 characters, "
            f"got {name!r}"
        )
    hours = body.get("hours", INVITE_TTL.total_seconds() / 3600)
    if (
        isinstance(hours, bool)
        or not isinstance(hours, (int, float))
        or not 0 < hours <= MAX_INVITE_HOURS
    ):
        raise ProtocolError(
            f"field 'hours' must be a number of hours above 0 and at most "
            f"{MAX_INVITE_HOURS}, got {hours!r}"
        )
    unit = body.get("unit")
    if unit is not None and not isinstance(unit, str):
        raise ProtocolError(f"field 'unit' must be a unit id string, got {unit!r}")
    return room, name.strip(), float(hours), unit


def access_routes(access: Access, rooms: RoomManager) -> list[Route]:
    """Return the HTTP routes for invite links."""

    async def create_invite(request: Request) -> Response:
        try:
            raw = await request.body()
            if len(raw) > MAX_INVITE_BODY_BYTES:
                raise ProtocolError(
                    f"request body of {len(raw)} bytes is over the limit of "
                    f"{MAX_INVITE_BODY_BYTES}"
                )
            try:
                body = await request.json()
            except ValueError:
                raise ProtocolError("request body is not valid JSON") from None
            room_id, name, hours, unit = _invite_request(body)
            host = access.bearer(request, room_id)
            if unit is not None and access.org is not None:
                access.org.unit(unit)
            kind = _invite_room_kind(access, rooms, room_id)
            if not is_allowed(kind, host.role, Action.ADMIT_PARTY):
                raise Forbidden(
                    f"role {host.role.value!r} may not invite parties to the "
                    f"{kind.value} room {room_id!r}; only hosts of a mediation "
                    "(mediator, chair) may"
                )
            invite = make_invite(
                access.secret, room_id, name, timedelta(hours=hours), unit=unit
            )
        except HubError as exc:
            return _error_response(exc)
        except ValueError as exc:
            return _error_response(ProtocolError(str(exc)))
        logger.info(
            "room=%s invite requested by user=%s for %r", room_id, host.user, name
        )
        base = str(request.base_url).rstrip("/")
        return JSONResponse(
            {
                "room": invite.room,
                "name": name,
                "path": invite.path,
                "url": base + invite.path,
                "expiresAt": invite.expires_at.isoformat().replace("+00:00", "Z"),
            },
            status_code=201,
        )

    async def follow_invite(request: Request) -> Response:
        # The page reads room and invite from the query string.
        query = urlencode(list(request.query_params.multi_items()))
        return RedirectResponse(f"/?{query}" if query else "/", status_code=303)

    return [
        Route("/api/invites", create_invite, methods=["POST"]),
        Route(INVITE_PATH, follow_invite, methods=["GET"]),
    ]


def _invite_room_kind(access: Access, rooms: RoomManager, room_id: str) -> SessionKind:
    if access.org is not None:
        try:
            return access.org.room(room_id).kind
        except NotFound:
            pass
    room = rooms.get(room_id)
    if room is None:
        raise NotFound(
            f"room {room_id!r} is neither in the org tree nor open; open it by "
            "joining with kind 'mediation' before inviting parties"
        )
    return room.kind
