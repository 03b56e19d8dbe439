"""/erpgo error <code>: the guide's three tables of error codes, looked up; unknown codes get the closest."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bot.core.findings import Status
from bot.core.registry import UsageError
from runbooks.errors import CODES, GUIDE_TABLES, lookup, parse_code

GUIDE = (
    Path(__file__).resolve().parents[2] / "shared" / "guide" / "erpgo-troubleshooting-guide.md"
)  # beside the project


def code_of(*words: str) -> str:
    return parse_code(list(words)).code


def guide_rows() -> dict[str, list[tuple[str, ...]]]:
    """The tables as the guide prints them, parsed from its markdown."""
    text = GUIDE.read_text()
    tables = {}
    for heading in GUIDE_TABLES:
        block = text.split(f"### {heading}", 1)[1].split("###", 1)[0]
        rows = [
            tuple(cell.strip() for cell in line.strip().strip("|").split("|"))
            for line in block.splitlines()
            if line.startswith("|")
        ]
        tables[heading] = rows[2:]  # after the header and the --- line
    return tables


@pytest.mark.skipif(not GUIDE.exists(), reason="the guide is not beside the project")
def test_the_tables_are_the_guides_row_for_row():
    assert {table: [tuple(row) for row in rows] for table, rows in GUIDE_TABLES.items()} == guide_rows()


@pytest.mark.parametrize(
    "code, meaning, next_verb",
    [
        ("503", "Service Unavailable", "/erpgo health"),
        ("23505", "Unique Violation", None),
        ("23503", "Foreign Key Violation", "/erpgo integrity"),
        ("23514", "Check Violation", "/erpgo integrity"),
        ("08006", "Connection Failed", "/erpgo db connect"),
        ("08001", "Connection Error", "/erpgo db connect"),
        ("AUTH_001", "Invalid credentials", "/erpgo user <email>"),
        ("AUTH_002", "Token expired", "/erpgo user <email>"),
        ("AUTH_003", "Invalid token", "/erpgo jwt <token>"),
        ("ORDER_002", "Invalid status", "/erpgo integrity"),
        ("429", "Too Many Requests", "rate limiting"),
    ],
)
def test_known_code_is_ok_with_meaning_causes_resolution_and_what_to_run_next(code, meaning, next_verb):
    finding = lookup(code)
    assert finding.status is Status.OK
    assert finding.title.startswith(f"{code} — {meaning}")
    entry = CODES[code]
    assert f"Common causes: {entry.causes}" in finding.details
    assert f"Resolution: {entry.resolution}" in finding.details
    assert finding.section.startswith("Common Error Codes › ")
    if next_verb:
        assert any(line.startswith("Next:") and next_verb in line for line in finding.details), finding.details


@pytest.mark.parametrize(
    "typed, code",
    [
        (["503"], "503"),
        (["auth_002"], "AUTH_002"),
        (["Auth-002"], "AUTH_002"),
        (["HTTP", "429"], "429"),
        (["sqlstate", "23505"], "23505"),
        (["`order_002`"], "ORDER_002"),
    ],
)
def test_codes_are_case_insensitive_and_forgiving_about_spelling(typed, code):
    assert code_of(*typed) == code


@pytest.mark.parametrize(
    "words", [[], ["x" * 41], ["50 3"], ["<script>"], ["503", "429"], ["AUTH_001;", "DROP"], ["--"]]
)
def test_empty_or_absurd_input_is_a_usage_error(words):
    with pytest.raises(UsageError):
        parse_code(words)


def test_unknown_http_status_is_a_warning_naming_it_and_the_closest_codes():
    finding = lookup("502")
    assert finding.status is Status.WARN
    assert "unknown code 502" in finding.title and "Bad Gateway" in finding.title
    assert set(finding.data["closest"]) == {"500", "503"}


def test_unknown_sqlstate_is_named_by_postgresql():
    finding = lookup("23502")
    assert finding.status is Status.WARN
    assert "not null violation" in finding.title
    assert set(finding.data["closest"]) <= {"23503", "23505", "23514"} and finding.data["closest"]


def test_unknown_application_code_suggests_its_family():
    finding = lookup("AUTH_004")
    assert finding.status is Status.WARN
    assert finding.data["closest"] and all(c.startswith("AUTH_") for c in finding.data["closest"])


def test_code_like_nothing_in_the_guide_lists_what_the_guide_has():
    finding = lookup("ZZZ")
    assert finding.status is Status.WARN and "not in the guide's tables" in finding.title
    assert any("AUTH_001" in line and "503" in line for line in finding.details)


async def test_error_verb_through_slack(start_bot):
    bot = await start_bot()
    await bot.command("error 503")
    posted = bot.slack.channel_messages("C0OPS")
    assert len(posted) == 1
    head = str(posted[0]["blocks"])
    assert "503 — Service Unavailable" in head
    thread = str(bot.slack.thread("C0OPS", posted[0]["ts"]))
    assert "/erpgo health" in thread and "Check service health" in thread


async def test_bad_code_answers_only_the_asker_with_the_usage(start_bot):
    bot = await start_bot()
    result = await bot.command("error " + "9" * 41)
    assert result.status == 200
    assert "Usage" in result.json["text"] and re.search(r"error &lt;code&gt;", result.json["text"])
    assert bot.slack.channel_messages("C0OPS") == []


# --- the real ERPGo's codes ---------------------------------------------------------------------

REAL = [
    "NOT_FOUND",
    "VALIDATION_ERROR",
    "CONFLICT",
    "UNAUTHORIZED",
    "FORBIDDEN",
    "INTERNAL_ERROR",
    "RATE_LIMIT_EXCEEDED",
    "BAD_REQUEST",
    "TIMEOUT",
    "SERVICE_UNAVAILABLE",
]
DOCUMENTED = [
    "TOKEN_EXPIRED",
    "INVALID_CREDENTIALS",
    "ACCOUNT_LOCKED",
    "DUPLICATE_EMAIL",
    "DUPLICATE_SKU",
    "INVALID_REQUEST",
]
VERBS = {
    "health",
    "logs",
    "db",
    "db connect",
    "db connections",
    "db locks",
    "db slow",
    "integrity",
    "user",
    "users",
    "jwt",
    "login-test",
    "security",
    "app",
    "perf",
}
STATUS = {
    "NOT_FOUND": 404,
    "VALIDATION_ERROR": 400,
    "CONFLICT": 409,
    "UNAUTHORIZED": 401,
    "FORBIDDEN": 403,
    "INTERNAL_ERROR": 500,
    "RATE_LIMIT_EXCEEDED": 429,
    "BAD_REQUEST": 400,
    "TIMEOUT": 408,
    "SERVICE_UNAVAILABLE": 503,
    "TOKEN_EXPIRED": 401,
    "INVALID_CREDENTIALS": 401,
    "ACCOUNT_LOCKED": 403,
    "DUPLICATE_EMAIL": 409,
    "DUPLICATE_SKU": 409,
    "INVALID_REQUEST": 400,
}


@pytest.mark.parametrize("code", REAL + DOCUMENTED)
def test_every_real_code_has_meaning_status_cause_and_a_verb_to_run(code):
    finding = lookup(code.lower())
    assert finding.status is Status.OK and finding.title.startswith(f"{code} — ")
    assert f"HTTP {STATUS[code]}, ERPGo error code" in finding.title
    assert finding.data["http_status"] == STATUS[code] and finding.data["guide_name"] is False
    assert any(line.startswith("Common causes: ") for line in finding.details)
    assert finding.section == "Common Error Codes › ERPGo's own codes"
    steps = [re.findall(r"`/erpgo ([a-z-]+(?: [a-z]+)?)", line) for line in finding.details if line.startswith("Next:")]
    named = {verb.split(" <")[0] for found in steps for verb in found}
    assert named and named <= VERBS, (code, named)
    origin = "ERPGo's API documentation" if code in DOCUMENTED else "ERPGo's source"
    assert any(origin in line for line in finding.details)


def test_unauthorized_answers_the_real_login_failure():
    finding = lookup("UNAUTHORIZED")
    text = "\n".join(finding.details)
    assert "invalid credentials" in text and "/erpgo login-test" in text and "/erpgo jwt <token>" in text
    assert "correlation_id" in text


@pytest.mark.parametrize(
    "code, real",
    [
        ("AUTH_001", "UNAUTHORIZED"),
        ("AUTH_002", "TOKEN_EXPIRED"),
        ("ORDER_002", "BAD_REQUEST"),
        ("PROD_001", "NOT_FOUND"),
    ],
)
def test_the_guides_application_codes_are_marked_as_the_guides_with_their_real_counterpart(code, real):
    finding = lookup(code)
    assert finding.status is Status.OK and "the guide's application code — not in ERPGo's source" in finding.title
    assert finding.data["guide_name"] is True and finding.data["real"][0] == real
    assert any(
        line.startswith("The guide's name: the real ERPGo never sends it") and real in line for line in finding.details
    )


def test_a_guide_http_status_names_the_real_codes_sent_with_it():
    [sent] = [line for line in lookup("401").details if line.startswith("ERPGo sends it with: ")]
    named = set(sent.removeprefix("ERPGo sends it with: ").split(", "))
    assert {"UNAUTHORIZED", "TOKEN_EXPIRED", "INVALID_TOKEN", "MISSING_AUTH_HEADER", "NOT_AUTHENTICATED"} <= named


# Every code ERPGo's middleware and e-mail verification handler answer with (read from its source), and status.
MIDDLEWARE_STATUS = {
    "MISSING_AUTH_HEADER": 401,
    "INVALID_AUTH_FORMAT": 401,
    "INVALID_TOKEN": 401,
    "NOT_AUTHENTICATED": 401,
    "INSUFFICIENT_PERMISSIONS": 403,
    "PERMISSION_CHECK_FAILED": 500,
    "REQUIRED_ROLE_MISSING": 403,
    "ROLE_PERMISSION_MISSING": 403,
    "ROLE_CHECK_FAILED": 500,
    "ROLE_FETCH_FAILED": 500,
    "INVALID_API_KEY": 401,
    "CSRF_TOKEN_REQUIRED": 403,
    "CSRF_VALIDATION_FAILED": 403,
    "CSRF_GENERATION_FAILED": 500,
    "ORIGIN_NOT_ALLOWED": 403,
    "ORIGIN_BLOCKED": 403,
    "UNSUPPORTED_MEDIA_TYPE": 415,
    "REQUEST_TOO_LARGE": 413,
    "READ_BODY_ERROR": 400,
    "INVALID_QUERY_PARAMS": 400,
    "RATE_LIMIT_PENALTY": 429,
    "IP_BLOCKED": 403,
    "IP_NOT_ALLOWED": 403,
    "TOKEN_REQUIRED": 400,
    "TOKEN_INVALID": 400,
    "TOKEN_INVALIDATION_FAILED": 500,
    "EMAIL_SEND_FAILED": 500,
}


@pytest.mark.parametrize("code", sorted(MIDDLEWARE_STATUS))
def test_every_middleware_code_is_known_with_its_status_and_flat_body(code):
    assert parse_code([code.lower()]).code == code  # codes over 20 characters are looked up too
    finding = lookup(code)
    assert finding.status is Status.OK and finding.data["http_status"] == MIDDLEWARE_STATUS[code]
    assert any("no correlation_id" in line for line in finding.details)


def test_the_real_403_of_a_missing_permission_points_at_the_users_roles():
    finding = lookup("INSUFFICIENT_PERMISSIONS")
    assert finding.title.startswith("INSUFFICIENT_PERMISSIONS — Insufficient permissions (HTTP 403")
    assert any("`/erpgo user <email> <permission>`" in line for line in finding.details)


def test_a_status_only_erpgo_uses_points_at_its_code():
    finding = lookup("408")
    assert finding.status is Status.WARN and "Request Timeout" in finding.title
    assert finding.data["closest"][0] == "TIMEOUT" and "ERPGo sends HTTP 408 with: TIMEOUT" in finding.details


@pytest.mark.parametrize(
    "typed, closest",
    [
        ("UNAUTHORISED", "UNAUTHORIZED"),
        ("RATE_LIMIT", "RATE_LIMIT_EXCEEDED"),
        ("token-expird", "TOKEN_EXPIRED"),
        ("DUPLICATE_USERNAME", "DUPLICATE_EMAIL"),
    ],
)
def test_a_misspelt_real_code_suggests_the_real_ones(typed, closest):
    finding = lookup(code_of(typed))
    assert finding.status is Status.WARN and closest in finding.data["closest"]
    assert any(line.startswith("ERPGo sends: NOT_FOUND, VALIDATION_ERROR") for line in finding.details)


async def test_a_real_code_through_slack(start_bot):
    bot = await start_bot()
    await bot.command("error rate_limit_exceeded")
    [head] = bot.slack.channel_messages("C0OPS")
    assert "RATE_LIMIT_EXCEEDED — Too many requests from one client (HTTP 429" in str(head["blocks"])
    assert "/erpgo security" in str(bot.slack.thread("C0OPS", head["ts"]))
