"""Redaction by classes of secrets: the forms that used to leak, the token table's own examples, a corpus of
log lines, SQL and command lines judged by detect-secrets' vendor detectors (an oracle written by others),
ordinary report text left alone, and the prefilter never keeping a step from a text it would change."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.core.redact import MASK, redact, redact_any, shorten, steps
from bot.core.redact.formats import TOKEN_FORMATS
from bot.slack.render import clip
from runbooks.database.locks import short_query

CORPUS = Path(__file__).parent / "fixtures" / "secret_corpus.txt"
# the detectors that know a vendor's or a format's structure; keyword and entropy guesses are not an oracle
NOT_ORACLES = {"KeywordDetector", "Base64HighEntropyString", "HexHighEntropyString", "IPPublicDetector"}
ORACLES = [cls() for cls in get_mapping_from_secret_type_to_class().values() if cls.__name__ not in NOT_ORACLES]


@pytest.mark.parametrize(
    "text, secret, kept",
    [
        ("https://a.blob.core.windows.net/c/d?sv=2022-11-02&sig=kM3pQ%2Fz9XbT4rW8yV%3D&se=2025", "kM3pQ", "&se=2025"),
        ("sv=2022-11-02&sr=b&sig=Zm9vYmFyYmF6cXV4cXV1eGNvcmdl", "Zm9vYmFy", "sr=b&sig=***"),
        ("refresh token 1//0gLm3Xq9ZtRwYp2Kd8Vn4Hs7Jc6Bf5", "gLm3Xq9Zt", "refresh token 1//***"),
        ("client 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", "1a2B3c4D", "client GOCSPX-***"),
        ("bearer of ya29.a0AfH6SMBx3Kq9Zt7Lm2Np4Rs6Tv8Wx0Yz1Ab3Cd5Ef", "a0AfH6SMB", "ya29.***"),
        ("npm_a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8 rejected", "a1B2c3D4e5", "npm_*** rejected"),
        ("pypi-AgEIcHlwaS5vcmcCJDk3ZmY0YjQ5LTI1ZjktNGE4Zi1hODU5LWU3NDk3ZDYz", "AgEIcHlwaS5", "pypi-***"),
        ("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", "ngeVfQFY", "SG.***"),
        ("key sk-proj-Ab3De5Gh7Jk9Mn1Pq3St5Vw7Yz9Bc1Ef3 revoked", "Ab3De5Gh7", "sk-proj-*** revoked"),
        ("key sk-ant-api03-Xy9Zk8Lm7Nq6Pr5St4Uv3Wx2Yz1Ab0Cd", "Xy9Zk8Lm7", "sk-ant-*** "[:-1]),
        ("AC0123456789abcdef0123456789abcdef:fedcba9876543210fedcba9876543210", "fedcba98765", "AC***:***"),
        ("TWILIO_AUTH_TOKEN=fedcba9876543210fedcba9876543210", "fedcba98765", "TWILIO_AUTH_TOKEN=***"),
        ("DB_PASS=hunter2 DB_HOST=db", "hunter2", "DB_HOST=db"),
        ("PASS=hunter2", "hunter2", "PASS=***"),
        ("mysql -uroot -pSECRETpw erp", "SECRETpw", "mysql -uroot -p*** erp"),
        ("curl -u user:SECRETpw https://x", "SECRETpw", "curl -u user:*** https://x"),
        ("Cookie: sid=31d4d96e407aad42; theme=dark", "31d4d96e", "theme=***"),
        ("Set-Cookie: sid=31d4d96e407aad42; Path=/; HttpOnly", "31d4d96e", "Set-Cookie: sid=***; Path=/; HttpOnly"),
        ("GET /export?pw=Query-Pw-55&format=csv", "Query-Pw", "&format=csv"),
        ("admin:$apr1$r31.....$HqJZimcKQFAMYayBlzkrA/", "HqJZimcKQ", "admin:$apr1$***"),
        ("postgres://app:p@ss@word@db:5432/erp", "ss@word", "postgres://app:***@db:5432/erp"),
        ("postgres://app:pa/ss/wd@db:5432/erp", "ss/wd", "postgres://app:***@db:5432/erp"),
        ('{"url": "postgres:\\/\\/app:Json-Pw-1@db\\/erp"}', "Json-Pw", "postgres:\\/\\/app:***@db"),
        ("https://x-access-token:ghs_abc@github.com/o/r.git", "ghs_abc", "@github.com/o/r.git"),
        ("--password hunter2 --verbose", "hunter2", "--password *** --verbose"),
        ("--db-password=hunter2", "hunter2", "--db-password=***"),
        ("redis-cli -a R3dis-Cli-Pw INFO", "R3dis", "redis-cli -a *** INFO"),
        ("db_password: hunter2", "hunter2", "db_password: ***"),
        ("X-Auth-Token: 0123456789abcdef", "0123456789", "X-Auth-Token: ***"),
        ("STRIPE_KEY=rk_abc123", "rk_abc123", "STRIPE_KEY=***"),
    ],
)
def test_secret_forms_that_used_to_leak_are_masked(text, secret, kept):
    shown = redact(text)
    assert secret not in shown, shown
    assert kept in shown, shown


@pytest.mark.parametrize(
    "prose",
    [
        "keyspace_hits:1234 keyspace_misses:12",
        "session count: 3",
        "sessions: 12, idle sessions: 4",
        "auth: md5",
        "auth_method: scram-sha-256",
        "SELECT sum(tokens_used) FROM usage WHERE day = $1",
        "ALTER TABLE orders ADD PRIMARY KEY (id)",
        "DETAIL:  Key (sku)=(ABC-1) already exists.",
        "passed: 12, failed: 0",
        "signal: SIGTERM",
        "group_key=abc-1 thread_key=abc sort_key=created_at",
        "docker run -p 8080:80 -u 1000:1000 erp/api",
        "cp -pR /data /backup && sudo -u postgres psql",
        "http://prometheus:9090/graph?g0.expr=up",
        "redis://redis:6379/0 and ssh://git@github.com/erp/api",
        "author: alice, bypass=false",
        "mysql is up, 3 sessions",
    ],
)
def test_report_text_that_only_mentions_secret_words_is_left_alone(prose):
    assert redact(prose) == prose


@pytest.mark.parametrize("token_format", TOKEN_FORMATS, ids=lambda f: f.name)
def test_every_example_in_the_token_table_is_masked_and_selected_by_the_prefilter(token_format):
    for example in token_format.examples:
        match = re.search(token_format.pattern, example)
        assert match, f"{example!r} is not an example of its own pattern"
        secret = match.group(0).replace(match.groupdict().get("keep") or "", "")
        text = f"deploy failed: {example} (retrying)"
        shown = redact(text)
        assert secret not in shown and shown.startswith("deploy failed: ") and shown.endswith(" (retrying)"), shown
        assert f"token: {token_format.name}" in steps.PREFILTER.steps_for(text)


def flagged(line: str) -> set[str]:
    """What detect-secrets' vendor detectors call a secret in the line: the captured value, or the whole
    match when what is captured is only a token's prefix (`ghp`)."""
    found = set()
    for detector in ORACLES:
        for pattern in detector.denylist:
            for match in pattern.finditer(line):
                captured = match.group(1) if match.re.groups else None
                found.add(captured if captured and len(captured) >= 8 else match.group(0))
    return found


def test_everything_detect_secrets_flags_in_the_corpus_comes_out_masked():
    lines = [line for line in CORPUS.read_text().splitlines() if line and not line.startswith("#")]
    flagged_lines = 0
    for line in lines:
        secrets = flagged(line)
        flagged_lines += bool(secrets)
        shown = redact(line)
        assert shown != line, f"nothing masked in {line!r}"
        for secret in secrets:
            assert secret not in shown, f"{secret!r} survives in {shown!r}"
    assert flagged_lines >= 35, "the oracle must have something to judge"


def test_redact_any_masks_weak_names_only_when_their_value_looks_like_a_credential():
    event = {"session": 3, "auth": "md5", "sig": "kM3pQ%2Fz9XbT4rW8yV%3D", "cookie": "sid=31d4d96e407aad42"}
    assert redact_any(event) == {"session": 3, "auth": "md5", "sig": MASK, "cookie": MASK}
    assert redact_any({"DB_PASS": "x", "group_key": "k-1"}) == {"DB_PASS": MASK, "group_key": "k-1"}


ISSUE_QUERY = (
    "SELECT * FROM sync_jobs WHERE source = 'mongodb+srv://erp:l6pveczk1mQ9x2Tb7Wn4Zs8Rp@cluster0.example.net/erp'"
)


def test_text_is_redacted_before_it_is_cut():
    """`db long-queries` titled a query with its first 80 characters and redacted that: a URL cut before its
    `@` showed 16 of the 24 password characters."""
    for shown in (short_query(ISSUE_QUERY, 80), shorten(ISSUE_QUERY, 80), clip(ISSUE_QUERY * 3, 150)):
        assert "l6pveczk" not in shown and "mongodb+srv://erp:***" in shown, shown
    assert short_query(ISSUE_QUERY, 80).endswith("…") and len(short_query(ISSUE_QUERY, 80)) <= 80


FRAGMENTS = [
    "password",
    "pass",
    "pw=",
    "DB_PASS=",
    "token",
    "key",
    "sig=",
    "session=",
    "Cookie: ",
    "auth",
    "=",
    ": ",
    '": "',
    " ",
    "\n",
    "'",
    '"',
    "\\/",
    "://",
    "u:p@h",
    "@",
    "/",
    "%3A",
    "-p",
    "-u ",
    "--password ",
    "mysql ",
    "redis-cli ",
    "$apr1$",
    "{SHA}",
    "eyJhbGciOiJIUzI1NiJ9",
    "IHsiYWxnIjoiSFMyNTYifQ",
    ".",
    "AKIA",
    "ghp_",
    "glpat-",
    "1//0",
    "ya29.",
    "sk-",
    "SG.",
    "AC",
    "0123456789abcdef",
    "ALTER ROLE ",
    "SET ",
    "crypt(",
    "Bearer ",
    "Basic ",
    "-----BEGIN PRIVATE KEY-----",
    "A" * 64,
    MASK,
]
tricky_text = st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=10)), max_size=14).map("".join)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(tricky_text, st.text()))
def test_no_step_the_prefilter_skipped_would_have_changed_the_result(text):
    """A step runs only when its trigger occurs: the triggers must be necessary, so running every step on
    the result must change nothing, and redacting twice changes nothing either."""
    once = redact(text)
    assert steps.run(once, every_step=True) == once
    assert redact(once) == once
