"""`/erpgo tls` against the loopback TLS servers of tests/fixtures/tls.py: each kind of broken certificate
judged as the guide asks, the defaults from ERPGO_TLS_ENDPOINTS, and what a bad argument or no
configuration gives."""

from __future__ import annotations

import pytest

from bot.core.findings import Status
from bot.core.registry import UsageError
from bot.local.text import render_text
from runbooks.tls import TlsArgs, parse_tls
from tests.db_support import one, run_verb, text_of
from tests.fixtures.tls import TlsServers

SECTION = "Network & Connectivity › SSL/TLS Issues"


async def test_each_configured_endpoint_is_judged(tls_servers: TlsServers) -> None:
    ports = tls_servers.ports
    endpoints = {name: f"localhost:{ports[name]}" for name in ("expiring", "wrong_host", "self_signed", "healthy")}
    endpoints["stalled"] = f"localhost:{tls_servers.stalled_port}"
    endpoints["closed"] = f"127.0.0.1:{tls_servers.closed_port}"
    findings = await run_verb(
        "tls",
        None,
        erpgo_tls_endpoints=",".join(endpoints.values()),
        erpgo_tls_ca_file=str(tls_servers.pki.ca_file),
        erpgo_check_timeout=2,
    )
    by_name = {name: one(findings, f"TLS {endpoint}") for name, endpoint in endpoints.items()}
    assert all(f.section.startswith(SECTION) for f in findings)

    expiring = by_name["expiring"]
    assert expiring.status is Status.CRIT and expiring.title.startswith("certificate expires in 3 days (")
    assert expiring.data["days_left"] == 3 and expiring.data["verified"] is True

    wrong = by_name["wrong_host"]
    assert wrong.status is Status.CRIT and wrong.title == "certificate is not valid for localhost"
    assert "certificate covers: wrong.example" in text_of(wrong)

    self_signed = by_name["self_signed"]
    assert self_signed.status is Status.CRIT and self_signed.title == "certificate is self-signed"
    assert self_signed.data["self_signed"] is True and self_signed.data["verified"] is False

    healthy = by_name["healthy"]
    assert healthy.status is Status.OK, text_of(healthy)
    assert healthy.title.startswith("certificate expires in 89 days")  # issued for 90 days, a little while ago
    shown = text_of(healthy)
    assert f"trusted by {tls_servers.pki.ca_file}" in shown
    assert "subject: CN=localhost,O=ERPGo tests" in shown and "issuer: CN=ERPGo Test CA,O=ERPGo tests" in shown
    assert "names: localhost, 127.0.0.1" in shown and "protocol: TLSv1.3, cipher: TLS_" in shown
    assert "chain sent: CN=localhost,O=ERPGo tests ← CN=ERPGo Test CA,O=ERPGo tests (2 certificates)" in shown

    stalled = by_name["stalled"]
    assert stalled.status is Status.CRIT and stalled.title.startswith("handshake timeout")
    closed = by_name["closed"]
    assert closed.status is Status.CRIT and closed.title.startswith("unreachable")


async def test_without_the_ca_file_the_system_store_does_not_trust_the_test_ca(tls_servers: TlsServers) -> None:
    port = tls_servers.ports["healthy"]
    findings = await run_verb(f"tls localhost:{port}", None)
    finding = one(findings, f"TLS localhost:{port}")
    assert finding.status is Status.CRIT and "not trusted" in finding.title
    renewal = one(findings, f"Renewal localhost:{port}")  # no Docker engine here: what serves it is unknown
    assert renewal.title.startswith("issued by a CA; no watched container publishes port")
    assert "issued by a CA (CN=ERPGo Test CA,O=ERPGo tests): renewal is a new request to that CA" in text_of(renewal)
    assert "verification against the system store" in text_of(finding)


def test_arguments_are_one_endpoint_or_none() -> None:
    assert parse_tls([]) == TlsArgs()
    assert parse_tls(["api.example.com"]) == TlsArgs(("api.example.com", 443))
    assert parse_tls(["[::1]:8443"]) == TlsArgs(("::1", 8443))
    for bad in (["https://api.example.com"], ["host:99999"], ["a", "b"]):
        with pytest.raises(UsageError):
            parse_tls(bad)


ANY_ENDPOINT_FOR_ALICE = "actions:\n  tls.any_endpoint:\n    allowed: [U0ALICE]\n"


async def test_the_verb_in_slack_not_configured_bad_argument_and_one_endpoint(start_bot, tls_servers, tmp_path) -> None:
    policy = tmp_path / "policy.yml"
    policy.write_text(ANY_ENDPOINT_FOR_ALICE)
    bot = await start_bot(erpgo_tls_ca_file=str(tls_servers.pki.ca_file), chatops_policy_file=str(policy))

    await bot.command("tls")
    [head] = bot.slack.channel_messages("C0OPS")
    assert "not configured (set ERPGO_TLS_ENDPOINTS, or give host:port)" in render_text(head)

    bot.slack.reset()
    answer = await bot.command("tls https://api.example.com/health")
    assert answer.status == 200 and "looks like a URL" in answer.body_text and "Usage" in answer.body_text
    assert bot.slack.channel_messages("C0OPS") == []

    await bot.command(f"tls localhost:{tls_servers.ports['healthy']}")
    [head] = bot.slack.channel_messages("C0OPS")
    assert f"TLS localhost:{tls_servers.ports['healthy']}" in render_text(head)
    assert "certificate expires in" in render_text(head)


async def test_probing_an_endpoint_outside_the_configured_ones_is_refused_unless_the_policy_allows_it(
    start_bot, tls_servers, tmp_path
) -> None:
    port = tls_servers.ports["healthy"]
    policy = tmp_path / "policy.yml"
    policy.write_text(ANY_ENDPOINT_FOR_ALICE)
    bot = await start_bot(
        erpgo_tls_ca_file=str(tls_servers.pki.ca_file),
        erpgo_tls_endpoints=f"localhost:{port}",
        chatops_policy_file=str(policy),
    )
    internal = f"localhost:{tls_servers.ports['expired']}"
    refused = await bot.command(f"tls {internal}", user_id="U0BOB")
    assert "You may not use `tls.any_endpoint`: the policy (policy.yml) allows U0ALICE only." in render_text(
        refused.json
    )
    assert bot.slack.channel_messages("C0OPS") == [], "no handshake, no report"

    await bot.command(f"tls localhost:{port}", user_id="U0BOB")  # a configured endpoint: anyone who may run tls
    [head] = bot.slack.channel_messages("C0OPS")
    assert f"TLS localhost:{port}" in render_text(head)

    bot.slack.reset()
    await bot.command(f"tls {internal}", user_id="U0ALICE")
    [head] = bot.slack.channel_messages("C0OPS")
    assert f"TLS {internal}" in render_text(head)


async def test_without_a_policy_no_one_probes_an_endpoint_of_their_choosing(start_bot, tls_servers) -> None:
    bot = await start_bot(erpgo_tls_ca_file=str(tls_servers.pki.ca_file))
    refused = await bot.command(f"tls localhost:{tls_servers.ports['healthy']}")
    assert "You may not use `tls.any_endpoint`: the default policy" in render_text(refused.json)
    assert bot.slack.channel_messages("C0OPS") == []
