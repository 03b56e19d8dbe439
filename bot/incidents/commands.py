"""Every /erpgo command whose report was posted: who ran what, where, and what it found — the
"commands run" of an incident's timeline."""

from __future__ import annotations

from bot.core.findings import Finding, Status, worst
from bot.core.redact import redact
from bot.store.pool import Store

MAX_ARGS = 300
HEADLINE_FINDINGS = 3
PRIVATE = "private"  # verb and status of a private verb's run: what it looked up and found stay unrecorded


def headline(findings: list[Finding]) -> str:
    """The worst findings, one line each ('' when all is well)."""
    bad = [f for f in sorted(findings, key=lambda f: -f.status.rank) if f.status.rank >= Status.WARN.rank]
    return "\n".join(f"{f.status.label} {f.component}: {f.title}" for f in bad[:HEADLINE_FINDINGS])


async def record_command_run(
    store: Store,
    *,
    user_id: str,
    channel: str,
    verb: str,
    text: str,
    report_ts: str | None,
    findings: list[Finding],
    seconds: float,
    private: bool = False,
) -> None:
    """One row of commands_run; a private verb's (its answer went to the asker alone) names only who ran it."""
    if private:
        verb, text, findings = PRIVATE, "", []
    async with store.acquire() as conn:
        await conn.execute(
            "INSERT INTO commands_run (user_id, channel, verb, args, report_ts, status, headline, duration_ms)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            user_id,
            channel,
            verb,
            redact(text)[:MAX_ARGS],
            report_ts,
            PRIVATE if private else worst(f.status for f in findings).value,
            redact(headline(findings))[:2000],
            int(seconds * 1000),
        )
