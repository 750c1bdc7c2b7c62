"""Two hubs sharing the machine's Redis: a party's single-use invite admits
them at one hub and is refused at the other."""

from __future__ import annotations

import datetime
import uuid

import pytest
import redis

from hub.auth import make_invite
from hub.errors import Unauthorized
from hub.shared import INVITE_KEY, redis_invite_store
from tests.hubclient import HubClient
from tests.hubproc import run_hub

REDIS_URL = "redis://127.0.0.1:6379/0"
SECRET = "s" * 40

pytestmark = pytest.mark.redis


def test_store_refuses_an_invite_used_through_another_store():
    first = redis_invite_store(REDIS_URL)
    second = redis_invite_store(REDIS_URL)
    jti = uuid.uuid4().hex
    expires = datetime.datetime.now(datetime.UTC) + datetime.timedelta(minutes=5)
    first.redeem(jti, expires)
    with pytest.raises(Unauthorized, match="already used"):
        second.redeem(jti, expires)
    ttl = redis.Redis.from_url(REDIS_URL).ttl(INVITE_KEY.format(jti=jti))
    assert 0 < ttl <= 301


async def test_invite_admits_once_across_two_hubs(tmp_path):
    extra = f'[bus]\nredis_url = "{REDIS_URL}"\n'
    env = {"HUB_AUTH_SECRET": SECRET}
    invite = make_invite(
        SECRET, "puer-mediation", "当事人 王某", datetime.timedelta(minutes=10)
    )
    with run_hub(tmp_path / "one", extra_config=extra, env=env) as one:
        with run_hub(tmp_path / "two", extra_config=extra, env=env) as two:
            first = HubClient(
                one.ws_url, "puer-mediation", "当事人 王某", token=invite.token
            )
            reply = await first.join()
            assert reply["type"] in ("joined", "waiting"), reply
            again = HubClient(
                two.ws_url, "puer-mediation", "当事人 王某", token=invite.token
            )
            refused = await again.join()
            assert refused["type"] == "error"
            assert refused["code"] == "unauthorized"
            assert "already used" in refused["message"]
            await first.close()
            await again.close()
