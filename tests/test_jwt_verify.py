"""`/erpgo jwt` with the real ERPGo's tokens: the signature verified with JWT_SECRET read from the API
container's environment, access vs refresh, issuer, expiry against JWT_EXPIRY, roles against the
database — and neither the token nor the secret anywhere the bot posts or logs."""

from __future__ import annotations

import json
import time
import uuid

import pytest

from bot.context import Actor
from bot.core.findings import Finding, Status
from bot.settings import load_settings
from demo.simulator import make_jwt, real_tokens
from runbooks.auth.tokens import TokenArgs
from tests import harness
from tests.fixtures.erpgo import JWT_SECRET

ADMIN = "admin@example.com"


def access_claims(email: str = ADMIN, lifetime: int = 15 * 60, **changes) -> dict:
    now = int(time.time())
    claims = {
        "user_id": str(uuid.uuid4()),
        "email": email,
        "username": email.split("@")[0],
        "roles": ["admin"],
        "jti": str(uuid.uuid4()),
        "iss": "erpgo-api",
        "sub": str(uuid.uuid4()),
        "aud": ["erpgo-api"],
        "nbf": now,
        "iat": now,
        "exp": now + lifetime,
    }
    return claims | changes


async def check_token(token: str, **settings) -> Finding:
    """The jwt check itself, before anything is rendered or redacted."""
    loaded = load_settings(**settings)
    [finding] = await harness.run_args("jwt", TokenArgs(token), loaded, actor=Actor("U0ALICE"))
    return finding


@pytest.fixture
def deployment(erpgo_containers, erp_dsn) -> dict:
    return {"docker_host": erpgo_containers, "erpgo_database_url": erp_dsn}


@pytest.mark.parametrize("mode", ["ERPGO_CONTAINERS", "ERPGO_COMPOSE_PROJECT"])
async def test_a_real_access_token_is_verified_and_shown_to_the_asker_alone(start_bot, deployment, capsys, mode):
    from bot.core.logs import configure_logging

    tokens = real_tokens(JWT_SECRET, ADMIN, str(uuid.uuid4()))
    configure_logging("debug")
    extra = {"erpgo_compose_project": "erpgo"} if mode == "ERPGO_COMPOSE_PROJECT" else {}
    bot = await start_bot(**deployment, **extra)
    result = await bot.command(f"jwt {tokens['access_token']}")

    assert bot.slack.channel_messages("C0OPS") == []
    [head, details] = [e for e in bot.slack.ephemerals if e["source"] == "chat.postEphemeral"]
    assert head["user"] == details["user"] == "U0ALICE"
    shown = json.dumps(head["blocks"]) + json.dumps(details["blocks"])
    assert f"HS256 access token for {ADMIN}, signature verified: valid for another 14m" in shown
    assert ":large_green_circle:" in json.dumps(head["blocks"])
    assert "signature: verified with erpgo-api's JWT_SECRET (HS256)" in shown
    assert "as erpgo-api's JWT_EXPIRY (15m) says" in shown and "roles: as the database has them now" in shown

    everything = str(bot.slack.calls) + str(bot.slack.ephemerals) + str(bot.slack.responses) + json.dumps(result.json)
    logged = capsys.readouterr()
    for secret in (tokens["access_token"], tokens["access_token"].split(".")[2], JWT_SECRET):
        assert secret not in everything
        assert secret not in logged.out + logged.err


async def test_a_wrong_signature_says_it_does_not_match(deployment):
    token = make_jwt("another-environments-secret-0123456789abcdef", access_claims())
    finding = await check_token(token, **deployment)
    assert finding.status is Status.WARN and finding.data["signature"] == "mismatch"
    assert "signature does NOT match erpgo-api's JWT_SECRET" in finding.title
    assert JWT_SECRET not in json.dumps(finding.to_dict()) and token not in json.dumps(finding.to_dict())


async def test_a_refresh_token_is_told_from_an_access_token(deployment):
    tokens = real_tokens(JWT_SECRET, ADMIN, "b7f3c1de-0000-4000-8000-000000000001")
    finding = await check_token(tokens["refresh_token"], **deployment)
    assert finding.status is Status.OK and finding.data["kind"] == "refresh"
    assert finding.title.startswith("HS256 refresh token for b7f3c1de-0000-4000-8000-000000000001, signature verified")
    details = "\n".join(finding.details)
    assert "a refresh token (aud erpgo-refresh): it goes to POST /api/v1/auth/refresh" in details
    assert "refresh tokens have a lifetime of their own, not JWT_EXPIRY" in details


async def test_an_expired_token_is_a_warning_even_when_its_signature_is_good(deployment):
    now = int(time.time())
    token = make_jwt(JWT_SECRET, access_claims(iat=now - 3600, nbf=now - 3600, exp=now - 2700))
    finding = await check_token(token, **deployment)
    assert finding.status is Status.WARN and finding.data["signature"] == "verified" and finding.data["expired"]
    assert "expired 45m 0s ago (TOKEN_EXPIRED" in finding.title


async def test_a_lifetime_other_than_jwt_expiry_and_a_foreign_issuer_are_named(deployment):
    token = make_jwt(JWT_SECRET, access_claims(lifetime=24 * 3600, iss="erpgo-staging"))
    finding = await check_token(token, **deployment)
    issues = "\n".join(finding.data["issues"])
    assert finding.status is Status.WARN
    assert "issuer erpgo-staging, not erpgo-api" in issues
    assert "lifetime 1d 0h, but erpgo-api's JWT_EXPIRY is 15m" in issues


async def test_nbf_in_the_future_and_iat_after_exp_are_named(deployment):
    now = int(time.time())
    token = make_jwt(JWT_SECRET, access_claims(nbf=now + 3600, iat=now + 7200, exp=now + 5400))
    issues = "\n".join((await check_token(token, **deployment)).data["issues"])
    assert "not valid before" in issues and "ERPGo refuses it until then" in issues
    assert "iat is after exp: the token was never valid" in issues and "in the future" in issues


async def test_roles_that_changed_since_the_token_was_issued(deployment):
    token = make_jwt(JWT_SECRET, access_claims(email="r.silva@example.com", roles=["manager"]))
    finding = await check_token(token, **deployment)
    assert finding.status is Status.WARN
    assert 'the token carries roles ["manager"], the database now ["viewer"]' in "\n".join(finding.data["issues"])


async def test_without_the_engine_the_token_is_still_decoded_and_says_why_it_is_not_verified(tmp_path):
    token = make_jwt(JWT_SECRET, access_claims())
    finding = await check_token(token, docker_host=f"unix://{tmp_path}/docker.sock")
    assert finding.status is Status.OK and finding.data["signature"] == "not verified"
    assert any(line.startswith("signature: not verified — DockerSocketMissing") for line in finding.details)


async def test_an_api_container_without_jwt_secret_is_said(start_bot, docker_engine, names):
    from demo.launch import compose_labels

    project = f"nosecret{uuid.uuid4().hex[:6]}"
    api = names("api")
    docker_engine.run(api, "sleep 100000", run_args=compose_labels("api", project))
    finding = await check_token(
        make_jwt(JWT_SECRET, access_claims()), docker_host=docker_engine.host, erpgo_compose_project=project
    )
    assert f"signature: not verified — {api} has no JWT_SECRET in its environment" in finding.details
