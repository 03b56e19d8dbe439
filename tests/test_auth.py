"""Authentication & Authorization: `user`, `users`, `jwt`, `login-test` and the `auth.assign_role` repair."""

from __future__ import annotations

import base64
import json
import shlex
import time

import asyncpg
import jwt as pyjwt
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from bot.core.findings import Finding, Status
from bot.core.registry import Refused, UsageError
from bot.settings import load_settings
from demo.simulator import make_jwt
from runbooks.auth import PROBE_EMAIL, parse_token, parse_user
from runbooks.auth.common import UserArgs
from tests import harness
from tests.fixtures.erpgo import load_demo_database


async def run_verb(words: str, **settings) -> dict[str, Finding]:
    findings = await harness.run_words(words, load_settings(**settings))
    return {f.component: f for f in findings}


async def user(dsn: str, *words: str) -> dict[str, Finding]:
    return await run_verb(shlex.join(["user", *words]), erpgo_database_url=dsn)


async def password_hashes(dsn: str) -> list[str]:
    conn = await asyncpg.connect(dsn)
    try:
        return [r["password_hash"] for r in await conn.fetch("SELECT password_hash FROM users")]
    finally:
        await conn.close()


@pytest.fixture
async def demo_copy(fresh_database) -> str:
    dsn = fresh_database("auth")
    await load_demo_database(dsn)
    return dsn


# --- user <email> ---------------------------------------------------------------------------------


async def test_md5_hash_is_named_but_never_shown(erp_dsn):
    found = await user(erp_dsn, "t.walker@example.com")
    assert found["Password hash"].status is Status.WARN
    assert "not bcrypt" in found["Password hash"].title and "MD5" in found["Password hash"].title
    assert found["User"].status is Status.OK and found["Roles"].title == "warehouse"
    shown = str([f.to_dict() for f in found.values()])
    for secret in await password_hashes(erp_dsn):
        assert secret not in shown


async def test_a_hash_is_judged_by_how_the_api_hashes_with_its_pepper_and_no_made_up_tool(erp_dsn, erpgo_containers):
    """ERPGo hashes bcrypt(password + PASSWORD_PEPPER) at BCRYPT_COST and has no `hash-password` tool."""
    settings = {"erpgo_database_url": erp_dsn, "docker_host": erpgo_containers}
    good = (await run_verb("user admin@example.com", **settings))["Password hash"]
    assert good.status is Status.OK and good.data["pepper"] == "set"
    assert "erpgo-api hashes bcrypt(password + PASSWORD_PEPPER) at cost 12" in good.details[0]
    md5 = (await run_verb("user t.walker@example.com", **settings))["Password hash"]
    text = "\n".join(md5.details)
    assert "hash-password" not in text and "UPDATE users SET password_hash" not in text
    assert "POST /api/v1/auth/forgot-password" in text and "PASSWORD_PEPPER" in text


async def test_inactive_user_is_a_warning(erp_dsn):
    found = await user(erp_dsn, "e.dubois@example.com")
    assert found["User"].status is Status.WARN and "INACTIVE" in found["User"].title
    assert found["Password hash"].status is Status.OK and found["Password hash"].title == "bcrypt ($2a$, cost 12)"


async def test_user_without_roles_is_a_warning_that_says_how_to_propose_one(erp_dsn):
    found = await user(erp_dsn, "n.patel@example.com")
    roles = found["Roles"]
    assert roles.status is Status.WARN and roles.title.startswith("no roles")
    assert roles.proposals == []
    assert any("/erpgo user n.patel@example.com <role>" in line and "viewer" in line for line in roles.details)


async def test_healthy_admin_is_all_green_with_role_permissions(erp_dsn):
    found = await user(erp_dsn, "admin@example.com")
    assert {c: f.status for c, f in found.items()} == {
        "User": Status.OK,
        "Password hash": Status.OK,
        "Roles": Status.OK,
    }
    assert "last login 2h" in found["User"].title
    assert found["Roles"].details[0].startswith("admin: users.create, users.read")  # roles.permissions is TEXT[]


async def test_unknown_user_is_a_warning_with_near_misses(erp_dsn):
    found = await user(erp_dsn, "Admin@Example.com")
    assert found["User"].status is Status.WARN and found["User"].title == "no user Admin@Example.com"
    assert any("admin@example.com" in line for line in found["User"].details)
    assert found["Roles"].status is Status.SKIPPED


async def test_naming_a_role_the_user_lacks_proposes_it(erp_dsn):
    found = await user(erp_dsn, "n.patel@example.com", "sales")
    [proposal] = found["Roles"].proposals
    assert (proposal.action, proposal.args) == ("auth.assign_role", {"email": "n.patel@example.com", "role": "sales"})
    assert proposal.preview.startswith("INSERT INTO user_roles (user_id, role_id, assigned_by)")
    unknown = await user(erp_dsn, "n.patel@example.com", "root")
    assert unknown["Roles"].proposals == [] and "no role named root" in unknown["Roles"].title
    held = await user(erp_dsn, "admin@example.com", "admin")
    assert held["Roles"].proposals == [] and "already has role admin" in held["Roles"].details


@pytest.mark.parametrize(
    "words, expected",
    [
        (["jane@example.com"], UserArgs("jane@example.com")),
        (["<mailto:jane@example.com|jane@example.com>"], UserArgs("jane@example.com")),
        (["jane@example.com", "viewer"], UserArgs("jane@example.com", role="viewer")),
    ],
)
def test_user_arguments(words, expected):
    assert parse_user(words) == expected


@pytest.mark.parametrize(
    "words", [[], ["jane"], ["a@b", "c", "d"], ["x" * 250 + "@example.com"], ["jane@example.com", "ro le;"]]
)
def test_bad_user_arguments_are_usage_errors(words):
    with pytest.raises(UsageError):
        parse_user(words)


# --- users ----------------------------------------------------------------------------------------


async def test_users_names_exactly_the_accounts_with_problems(erp_dsn):
    found = await run_verb("users", erpgo_database_url=erp_dsn)
    assert found["Users without roles"].status is Status.WARN
    assert found["Users without roles"].data["emails"] == ["n.patel@example.com"]
    assert found["Password hashes"].status is Status.WARN
    assert found["Password hashes"].data["emails"] == ["t.walker@example.com"]
    accounts = found["Accounts"]
    assert accounts.data["inactive"] == ["e.dubois@example.com"] and accounts.data["unverified"] == []
    assert accounts.title == "13 users: 1 inactive (e.dubois@example.com), 0 unverified"
    shown = str([f.to_dict() for f in found.values()])
    for secret in await password_hashes(erp_dsn):
        assert secret not in shown


async def test_users_on_a_database_without_erpgo_tables(fresh_database):
    found = await run_verb("users", erpgo_database_url=fresh_database("noauth"))
    assert all(
        f.status is Status.SKIPPED and f.title == "table users not found — not an ERPGo database?"
        for f in found.values()
    )


# --- auth.assign_role -----------------------------------------------------------------------------


async def test_assign_role_gives_the_role_once_then_refuses(demo_copy):
    [proposal] = (await user(demo_copy, "n.patel@example.com", "sales"))["Roles"].proposals
    settings = load_settings(erpgo_database_url=demo_copy)

    async def assign(**args: str) -> str:
        return await harness.remediate(proposal.action, settings, **args)

    assert await assign(**proposal.args) == "Gave n.patel@example.com the role sales"

    after = await user(demo_copy, "n.patel@example.com")
    assert after["Roles"].status is Status.OK and after["Roles"].title == "sales"
    users = await run_verb("users", erpgo_database_url=demo_copy)
    assert users["Users without roles"].status is Status.OK

    with pytest.raises(Refused, match="already has the role sales"):
        await assign(**proposal.args)
    with pytest.raises(Refused, match="no role named root"):
        await assign(email="n.patel@example.com", role="root")
    with pytest.raises(Refused, match="no user"):
        await assign(email="ghost@example.com", role="sales")


# --- jwt <token> ----------------------------------------------------------------------------------


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def token(claims: dict, secret: str = "s3cr3t") -> str:
    return make_jwt(secret, claims)


async def decode(text: str) -> Finding:
    [finding] = await harness.run_args("jwt", parse_token(text.split()))
    return finding


async def test_expired_token_is_a_warning_saying_how_long_ago():
    now = int(time.time())
    finding = await decode(
        token({"sub": "u-1", "email": "admin@example.com", "type": "access", "iat": now - 4200, "exp": now - 3600})
    )
    assert finding.status is Status.WARN
    assert "expired 1h 0m ago (TOKEN_EXPIRED; the guide's AUTH_002)" in finding.title
    assert "admin@example.com" in finding.title
    assert "lifetime (exp − iat): 10m 0s — compare with JWT_EXPIRY" in finding.details
    assert finding.data["expired"] is True


async def test_valid_token_shows_header_and_claims_but_not_the_signature():
    now = int(time.time())
    text = pyjwt.encode(
        {
            "sub": "42",
            "iss": "erpgo-api",
            "aud": ["erpgo-api"],
            "roles": ["admin"],
            "iat": now,
            "exp": now + 900,
            "secret_thing": "x",
        },
        "a-secret-key-long-enough-for-hs256!",
        algorithm="HS256",
    )
    finding = await decode("Bearer " + text)
    assert finding.status is Status.OK and "valid for another 14m" in finding.title
    details = "\n".join(finding.details)
    assert "header: alg HS256, typ JWT" in details and "sub: 42" in details and "iss: erpgo-api" in details
    assert finding.title.startswith("HS256 access token for 42") and finding.data["kind"] == "access"
    assert "signature: not verified — not configured (set DOCKER_HOST)" in details
    assert 'roles: ["admin"]' in details and "other claims (values not shown): secret_thing" in details
    signature = text.split(".")[2]
    assert signature not in str(finding.to_dict()) and text not in str(finding.to_dict())


@pytest.mark.parametrize(
    "text, expected",
    [
        ("abc.def", "not a JWT: 2 parts"),
        ("a.b.c.d", "not a JWT: 4 parts"),
        ("aaaa.bbbb.cccc", "3 parts, but they do not decode"),
    ],
)
async def test_malformed_token_is_a_warning_about_its_structure(text, expected):
    finding = await decode(text)
    assert finding.status is Status.WARN and finding.title.startswith(expected)


async def test_unsigned_token_without_expiry_is_flagged():
    text = b64(b'{"alg":"none"}') + "." + b64(b'{"sub":"x"}') + "."
    finding = await decode(text)
    assert finding.status is Status.WARN
    assert any("unsigned" in i for i in finding.data["issues"]) and any(
        "no exp claim" in i for i in finding.data["issues"]
    )


@pytest.mark.parametrize("words", [[], ["a.b.c", "d.e.f"], ["x" * 9000]])
def test_bad_jwt_arguments_are_usage_errors(words):
    with pytest.raises(UsageError):
        parse_token(words)


async def test_jwt_through_slack_never_posts_or_logs_the_token(start_bot, capsys):
    from bot.core.logs import configure_logging

    # header and payload with a leading space: base64 that does not start with "eyJ", so the
    # redaction of everything posted would not catch it — the check itself must not echo it
    now = int(time.time())
    header = b64(b' {"alg":"HS256","typ":"JWT"}')
    payload = b64(
        b" " + json.dumps({"sub": "u-7", "email": "j.martin@example.com", "iat": now - 60, "exp": now - 30}).encode()
    )
    signature = b64(b"a very particular signature 0123456789")
    text = f"{header}.{payload}.{signature}"
    configure_logging("debug")
    bot = await start_bot()
    result = await bot.command(f"jwt {text}")
    assert bot.slack.channel_messages("C0OPS") == [], "a pasted token's report is never posted in the channel"
    [head, _details] = [e for e in bot.slack.ephemerals if e["source"] == "chat.postEphemeral"]
    posted = str(bot.slack.calls) + str(bot.slack.messages) + str(bot.slack.ephemerals) + json.dumps(result.json)
    logged = capsys.readouterr().out
    assert head["user"] == "U0ALICE" and "only you can see this" in str(head["blocks"])
    assert "j.martin@example.com" in str(head["blocks"]) and "expired" in str(head["blocks"])
    for secret in (text, signature, payload, header):
        assert secret not in posted
        assert secret not in logged


# --- login-test -----------------------------------------------------------------------------------


async def login_test(url: str) -> Finding:
    return (await run_verb("login-test", erpgo_api_url=url))["Login path"]


async def test_login_path_answers_the_real_401_unauthorized(simulator):
    finding = await login_test(simulator.url)
    assert finding.status is Status.OK
    assert finding.title.startswith('answers HTTP 401 UNAUTHORIZED "invalid credentials" for a wrong password')
    assert finding.data["code"] == "UNAUTHORIZED" and PROBE_EMAIL in finding.details[0]
    [line] = [line for line in finding.details if line.startswith("correlation_id: ")]
    assert finding.data["correlation_id"] in line
    assert 'details: {"operation": "Login"}' in finding.details


async def test_login_path_answers_the_guides_auth_001(simulator):
    simulator.app["sim"].update({"dialect": "guide"})
    finding = await login_test(simulator.url)
    assert finding.status is Status.OK
    assert finding.title.startswith("answers HTTP 401 AUTH_001 for a wrong password")
    assert finding.data["code"] == "AUTH_001"


async def test_login_path_broken_when_the_database_behind_it_is(simulator):
    simulator.app["sim"].update({"status": "unhealthy", "dialect": "guide"})
    finding = await login_test(simulator.url)
    assert finding.status is Status.CRIT and finding.title.startswith("login path broken: HTTP 500")


async def test_the_real_api_hides_a_database_outage_behind_invalid_credentials_and_the_check_says_so(simulator):
    simulator.app["sim"].update({"status": "unhealthy"})
    finding = await login_test(simulator.url)
    assert finding.status is Status.OK  # all the login path shows; /erpgo health is the one to tell
    assert any("also when the user lookup itself fails" in line and "/erpgo health" in line for line in finding.details)


async def test_rate_limited_login_is_explained_with_what_to_run_next(simulator):
    simulator.app["sim"].update({"login": "rate-limited"})
    finding = await login_test(simulator.url)
    assert finding.status is Status.WARN
    assert finding.title.startswith('rate limited (HTTP 429 "Too many login attempts"')
    assert finding.data["code"] == "RATE_LIMIT_EXCEEDED"
    text = "\n".join(finding.details)
    assert "RATE_LIMIT_EXCEEDED" in text and "Redis" in text and "/erpgo security" in text and "/erpgo logs" in text


@pytest.mark.parametrize(
    "dialect, answer", [("real", 'HTTP 429 "Account locked"'), ("guide", "HTTP 403 ACCOUNT_LOCKED")]
)
async def test_locked_probe_account_is_explained(simulator, dialect, answer):
    simulator.app["sim"].update({"login": "locked", "dialect": dialect})
    finding = await login_test(simulator.url)
    assert finding.status is Status.WARN and finding.data["code"] == "ACCOUNT_LOCKED"
    assert finding.title.startswith(f"the probe account is locked ({answer}")
    text = "\n".join(finding.details)
    assert "MAX_LOGIN_ATTEMPTS" in text and "LOCKOUT_DURATION" in text and "/erpgo security" in text


async def answering(*responses) -> TestServer:
    """A login endpoint that answers each request with the next (status, body)."""
    app = web.Application()
    queue = list(responses)

    async def login(_request):
        status, body = queue.pop(0) if len(queue) > 1 else queue[0]
        return web.json_response(body, status=status)

    app.router.add_post("/api/v1/auth/login", login)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    return server


async def test_the_rate_limiter_middlewares_own_body_shows_when_to_retry():
    server = await answering(
        (429, {"error": "Rate limit exceeded", "code": "RATE_LIMIT_EXCEEDED", "retry_after_seconds": 42})
    )
    try:
        finding = await login_test(str(server.make_url("")).rstrip("/"))
    finally:
        await server.close()
    assert finding.status is Status.WARN and finding.title.startswith("rate limited (HTTP 429 RATE_LIMIT_EXCEEDED")
    assert "retry after: 42 s" in finding.details


async def test_unauthorized_for_another_reason_is_not_the_wrong_password_answer():
    body = {
        "error": {
            "code": "UNAUTHORIZED",
            "message": "missing authorization header",
            "timestamp": "2025-11-30T01:02:03Z",
        }
    }
    server = await answering((401, body))
    try:
        finding = await login_test(str(server.make_url("")).rstrip("/"))
    finally:
        await server.close()
    assert finding.status is Status.WARN and finding.title.startswith(
        'unexpected answer HTTP 401 UNAUTHORIZED "missing'
    )
    assert "`/erpgo error unauthorized` explains UNAUTHORIZED" in finding.details


async def test_login_accepting_a_wrong_password_is_critical():
    server = await answering((200, {"access_token": "whatever"}))
    try:
        finding = await login_test(str(server.make_url("")).rstrip("/"))
    finally:
        await server.close()
    assert finding.status is Status.CRIT and "ACCEPTED" in finding.title


async def test_login_test_not_configured_is_skipped():
    [finding] = [
        f for f in (await run_verb("login-test")).values() if f.status is not Status.SKIPPED or "ERPGO_API" in f.title
    ]
    assert finding.status is Status.SKIPPED and "ERPGO_API_URL" in finding.title
