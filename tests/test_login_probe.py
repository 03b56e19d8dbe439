"""`login-test` beyond the wrong password, against the ERPGo simulator (which answers as the real handlers do)
and the demo's containers and database: the refresh endpoint refuses a token nobody signed, the probe
account logs in and its token is verified with the API container's JWT_SECRET and refreshed, and
`auth.send_password_reset` has ERPGo mail a reset link — refused for an account ERPGo does not have."""

from __future__ import annotations

import json
import warnings

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from bot.core.findings import Finding, Status
from bot.core.registry import Refused
from bot.settings import load_settings
from demo.simulator import create_app
from tests import harness
from tests.fixtures.erpgo import JWT_SECRET

ADMIN, PASSWORD = "admin@example.com", "admin123"


async def login_test(**settings) -> dict[str, Finding]:
    findings = await harness.run_words("login-test", load_settings(**settings))
    return {f.component: f for f in findings}


def said(finding: Finding) -> str:
    return json.dumps([finding.title, finding.details, finding.evidence, finding.data], default=str)


@pytest.fixture
async def signing_simulator():
    """The simulator signing with the API container's JWT_SECRET, as the real API does."""
    app = create_app()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", web.NotAppKeyWarning)
        app["jwt_secret"] = JWT_SECRET
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield server
    await server.close()


@pytest.fixture
def deployment(signing_simulator, erpgo_containers, erp_dsn) -> dict:
    url = str(signing_simulator.make_url("")).rstrip("/")
    return {"erpgo_api_url": url, "docker_host": erpgo_containers, "erpgo_database_url": erp_dsn}


@pytest.mark.parametrize(
    ("dialect", "answer"),
    [("real", 'HTTP 500 "Token refresh failed"'), ("guide", 'HTTP 401 AUTH_003 "Invalid token"')],
)
async def test_the_refresh_endpoint_refuses_a_token_nobody_signed(simulator, dialect, answer):
    simulator.app["sim"].update({"dialect": dialect})
    refresh = (await login_test(erpgo_api_url=simulator.url))["Refresh path"]
    assert refresh.status is Status.OK and refresh.title == f"rejects an invalid refresh token: {answer}"
    if dialect == "real":
        assert any("the real ERPGo answers 500 here, not 401" in line for line in refresh.details)


async def test_without_a_probe_account_no_real_login_is_tried(simulator):
    probe = (await login_test(erpgo_api_url=simulator.url))["Probe login"]
    assert probe.status is Status.SKIPPED and "ERPGO_PROBE_EMAIL and ERPGO_PROBE_PASSWORD not set" in probe.title


async def test_the_probe_account_logs_in_and_its_token_is_verified_and_refreshed(deployment):
    findings = await login_test(**deployment, erpgo_probe_email=ADMIN, erpgo_probe_password=PASSWORD)

    probe = findings["Probe login"]
    assert probe.title.startswith(f"{ADMIN} logged in (") and "signature verified" in probe.title
    assert "its refresh token was exchanged for a new pair (HTTP 200" in probe.details[1]
    assert probe.status is Status.OK, probe.details
    assert findings["Login path"].status is Status.OK
    for finding in findings.values():
        assert PASSWORD not in said(finding)


async def test_a_probe_that_cannot_log_in_proposes_erpgos_own_reset_which_mails_the_account(
    deployment, signing_simulator
):
    deployment = {**deployment, "erpgo_probe_email": ADMIN, "erpgo_probe_password": "not-its-password"}
    probe = (await login_test(**deployment))["Probe login"]
    assert probe.status is Status.WARN and "cannot log in" in probe.title
    [reset] = probe.proposals
    assert reset.action == "auth.send_password_reset" and "POST /api/v1/auth/forgot-password" in reset.preview

    outcome = await harness.remediate(reset.action, load_settings(**deployment), **reset.args)

    assert f"ERPGo accepted the reset request for {ADMIN}" in outcome and "never sets" in outcome
    assert signing_simulator.app["password_resets"] == [ADMIN]


async def test_a_reset_for_an_account_erpgo_does_not_have_is_refused_and_nothing_is_mailed(
    deployment, signing_simulator
):
    with pytest.raises(Refused, match=r"no ERPGo account nobody@example\.com"):
        await harness.remediate("auth.send_password_reset", load_settings(**deployment), email="nobody@example.com")
    assert signing_simulator.app["password_resets"] == []
