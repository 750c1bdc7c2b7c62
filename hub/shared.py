"""State that hubs on several machines share through Redis (bus.redis_url).

Today that is the list of used invite links, so that a party's single-use
link admits them once across all hubs, not once per hub."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import redis

from hub.auth import InviteStore

logger = logging.getLogger(__name__)

INVITE_KEY = "zongzhi-hub:invite-used:{jti}"


def redis_invite_store(url: str) -> InviteStore:
    """Return an InviteStore that records used invites in Redis with
    SET NX, expiring with the invite itself."""
    client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)

    def persist(jti: str, expires_at: datetime) -> bool:
        expiry = expires_at if expires_at.tzinfo else expires_at.replace(tzinfo=UTC)
        seconds = max(1, int(expiry.timestamp() - datetime.now(UTC).timestamp()) + 1)
        try:
            stored = client.set(INVITE_KEY.format(jti=jti), "1", nx=True, ex=seconds)
        except redis.RedisError as exc:
            logger.error(
                "invite %s... could not be recorded in Redis: %s", jti[:8], exc
            )
            raise
        return bool(stored)

    logger.info("used invites are shared through Redis at %s", _redact(url))
    return InviteStore(persist=persist)


def _redact(url: str) -> str:
    if "@" not in url:
        return url
    scheme, _, rest = url.partition("://")
    return f"{scheme}://***@{rest.rpartition('@')[2]}"
