"""Guide: "Database Issues › Database Locks and Deadlocks" — who blocks whom, long-running queries,
and the two ways out the guide gives: cancel the query or terminate the backend.

1. Identify locks: `pg_blocking_pids` gives, for every session waiting on a lock, the sessions it
   waits for; the chains are grouped by their root blocker (the session that waits for nobody).
2. Resolve: a root blocker that is running a query can be *cancelled*; one that is idle in
   transaction cannot (cancel does not release its locks), only *terminated*. Terminate is
   offered for both as the stronger option.

Both remediations run only after approval, and re-check first that the pid is still the same
backend (same backend_start: pids are reused) and that it still blocks someone, or that its query
is still the one proposed. The check and the signal are one statement, so nothing changes in
between.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from bot.context import CheckContext
from bot.core.findings import Finding, Proposal, Status
from bot.core.parse import ascii_decimal
from bot.core.redact import shorten
from bot.core.registry import Args, Refused, Runbook, UsageError
from bot.core.units import human_duration
from runbooks.database.common import LOCK_WAIT_CRIT_S

runbook = Runbook("database.locks")

SECTION = "Database Issues › Database Locks and Deadlocks"
COMPONENT = "PostgreSQL locks"
LONG_COMPONENT = "PostgreSQL queries"
MAX_QUERY = 200
MAX_SHOWN = 10  # findings per report; the rest are summed up
MAX_VICTIMS_SHOWN = 3
CRIT_QUERY_S = 300
EFFECT_WAIT_S = 3.0  # how long a remediation watches for its effect

runbook.verb(
    "db locks",
    "blocked and blocking sessions, grouped by root blocker (guide: Database Locks and Deadlocks)",
    ack="Looking for blocked sessions…",
)


@dataclass(frozen=True)
class LongQueriesArgs(Args):
    seconds: float = 5.0


def parse_seconds(words: list[str]) -> LongQueriesArgs:
    if not words:
        return LongQueriesArgs()
    if len(words) > 1:
        raise UsageError("`db long-queries` takes one number of seconds")
    value = ascii_decimal(words[0].lower().removesuffix("s"), min=0, max=10**9, what="a number of seconds")
    if not 0 < value <= 86400:
        raise UsageError("the number of seconds must be more than 0 and at most 86400 (a day)")
    return LongQueriesArgs(value)


runbook.verb(
    "db long-queries",
    "queries running longer than N seconds (default 5), with cancel/terminate proposals",
    usage="[seconds]",
    parse=parse_seconds,
    ack="Looking for long-running queries…",
)

SESSIONS = """
SELECT a.pid, a.usename, a.application_name, host(a.client_addr) AS client, a.state, a.backend_type,
       a.backend_start, a.query_start, a.query, a.wait_event_type, a.wait_event,
       extract(epoch FROM now() - a.state_change) AS state_s,
       extract(epoch FROM now() - a.xact_start) AS xact_s,
       extract(epoch FROM now() - a.query_start) AS query_s,
       CASE WHEN a.wait_event_type = 'Lock' THEN pg_blocking_pids(a.pid) ELSE '{}'::int[] END AS blocked_by
FROM pg_stat_activity a
WHERE a.datname = current_database() AND a.pid <> pg_backend_pid()
"""

LONG_QUERIES = (
    SESSIONS
    + """
  AND a.state = 'active' AND a.backend_type = 'client backend'
  AND a.query_start < now() - make_interval(secs => $1)
ORDER BY a.query_start
"""
)

# --- the statements a remediation runs: the re-check and the signal in one -------------------

STILL_BLOCKING = (
    "EXISTS (SELECT 1 FROM pg_stat_activity w"
    " WHERE w.wait_event_type = 'Lock' AND a.pid = ANY (pg_blocking_pids(w.pid)))"
)
STILL_RUNNING = "a.state = 'active' AND a.query_start = $3"
SIGNAL = {"cancel": "pg_cancel_backend", "terminate": "pg_terminate_backend"}


def signal_statement(kind: str, because: str) -> str:
    condition = STILL_BLOCKING if because == "blocking" else STILL_RUNNING
    return (
        f"SELECT {SIGNAL[kind]}(a.pid) FROM pg_stat_activity a\n"
        f"WHERE a.pid = $1 AND a.backend_start = $2\n  AND {condition}"
    )


def literal(value) -> str:
    if isinstance(value, datetime):
        return "'" + value.astimezone(UTC).isoformat(sep=" ") + "'"
    return str(int(value))


def preview(kind: str, because: str, pid: int, backend_start: datetime, query_start: datetime | None) -> str:
    """The statement exactly as it will run, with its parameters written in."""
    sql = signal_statement(kind, because)
    for number, value in ((3, query_start), (2, backend_start), (1, pid)):
        if value is not None:
            sql = sql.replace(f"${number}", literal(value))
    return sql


# --- describing sessions ----------------------------------------------------------------------


def short_query(query: str | None, limit: int = MAX_QUERY) -> str:
    return shorten(re.sub(r"\s+", " ", query or "").strip() or "(none)", limit)


def age(seconds) -> str:
    return human_duration(float(seconds)) if seconds is not None else "?"


def who(session) -> str:
    return f"user {session['usename'] or '?'}, application {session['application_name'] or '(none)'}"


def session_lines(session) -> list[str]:
    state = session["state"] or session["backend_type"] or "?"
    lines = [f"pid {session['pid']} · {who(session)} · client {session['client'] or 'local socket'}"]
    state_line = f"state: {state} for {age(session['state_s'])}"
    if session["xact_s"] is not None:
        state_line += f", transaction open for {age(session['xact_s'])}"
    lines.append(state_line)
    label = "query" if state == "active" else "last query"
    lines.append(f"{label}: {short_query(session['query'])}")
    return lines


def proposals_for(session, because: str, reason_lines: dict[str, str], database: str) -> list[Proposal]:
    """cancel for a running query, terminate always (the only way for an idle-in-transaction one)."""
    if session["backend_type"] not in (None, "client backend"):
        return []  # autovacuum, walsender…: not ours to stop
    pid, started = session["pid"], session["backend_start"]
    query_start = session["query_start"] if because == "long_query" else None
    args = {"pid": pid, "backend_start": started.isoformat(), "because": because, "database": database}
    if query_start is not None:
        args["query_start"] = query_start.isoformat()
    kinds = ["cancel", "terminate"] if session["state"] == "active" else ["terminate"]
    out = []
    for kind in kinds:
        if kind == "cancel":
            summary = f"Cancel the query of backend {pid} ({who(session)})"
        else:
            summary = f"Terminate backend {pid} ({who(session)})"
        remediation = cancel_backend if kind == "cancel" else terminate_backend
        out.append(
            remediation.propose(
                **args,
                summary=summary,
                why=reason_lines[kind],
                preview=preview(kind, because, pid, started, query_start),
            )
        )
    return out


# --- db locks --------------------------------------------------------------------------------


def root_blockers(sessions: dict[int, dict]) -> dict[int, set[int]]:
    """{root blocker pid: every session waiting behind it, directly or through a chain}."""
    blocked = {pid: set(s["blocked_by"] or []) for pid, s in sessions.items() if s["blocked_by"]}

    def roots_of(pid: int, seen: frozenset = frozenset()) -> set[int]:
        found = set()
        for blocker in blocked.get(pid, ()):
            if blocker in seen:
                continue
            if blocker in blocked:
                found |= roots_of(blocker, seen | {pid})
            else:
                found.add(blocker)
        return found

    groups: dict[int, set[int]] = {}
    for pid in blocked:
        roots = roots_of(pid)
        if not roots:  # a cycle (the deadlock detector will break it within deadlock_timeout)
            roots = set(blocked[pid])
        for root in roots:
            groups.setdefault(root, set()).add(pid)
    return groups


# The guide's Locks 3 (prevention): what to change in the application so this does not recur.
PREVENTION = (
    "to prevent it (guide: Locks 3): take row locks in one order everywhere (e.g. by id) so two "
    "transactions never wait on each other; keep transactions short (no network call or user wait "
    "inside one); set `lock_timeout` (e.g. `SET lock_timeout = '5s'`) so a waiter fails fast instead of queueing"
)

BLOCKER_REASONS_ACTIVE = {
    "cancel": "It is running a query: cancelling stops that statement, its transaction rolls back "
    "and its locks are released; the session stays connected.",
    "terminate": "The stronger option: ends its whole session (its transaction rolls back, the "
    "application has to reconnect).",
}
BLOCKER_REASONS_IDLE = {
    "terminate": "It is idle in transaction: cancelling would not release its locks; only terminating "
    "the session rolls its transaction back and frees them.",
}


def blocker_finding(pid: int, victims: set[int], sessions: dict[int, dict], database: str) -> Finding:
    waits = sorted(((sessions[v]["query_s"] or 0, v) for v in victims if v in sessions), reverse=True)
    longest = waits[0][0] if waits else 0
    plural = "s" if len(victims) != 1 else ""
    root = sessions.get(pid)
    if root is None:
        return Finding.crit(
            COMPONENT,
            f"pid {pid} (not in this database, or not visible to the bot's user) "
            f"blocks {len(victims)} session{plural} for up to {age(longest)}",
            data={"pid": pid, "blocked": sorted(victims)},
        )
    state = root["state"] or root["backend_type"] or "?"
    details = session_lines(root)
    details.append(f"blocks {len(victims)} session{plural}:")
    for wait, victim in waits[:MAX_VICTIMS_SHOWN]:
        v = sessions[victim]
        details.append(f"  pid {victim} ({v['usename'] or '?'}) waiting {age(wait)}: {short_query(v['query'])}")
    if len(waits) > MAX_VICTIMS_SHOWN:
        details.append(f"  … and {len(waits) - MAX_VICTIMS_SHOWN} more")
    idle = state != "active"
    status = Status.CRIT if idle or longest >= LOCK_WAIT_CRIT_S else Status.WARN
    title = (
        f"pid {pid} ({state} for {age(root['state_s'])}) blocks {len(victims)} session{plural}; "
        f"the longest has waited {age(longest)}"
    )
    reasons = BLOCKER_REASONS_IDLE if idle else BLOCKER_REASONS_ACTIVE
    return Finding(
        status,
        COMPONENT,
        title,
        details=details,
        section=SECTION,
        proposals=proposals_for(root, "blocking", reasons, database),
        data={
            "pid": pid,
            "state": state,
            "blocked": sorted(victims),
            "longest_wait_s": round(longest, 1),
            "backend_start": root["backend_start"].isoformat(),
        },
    )


@runbook.check("db locks", component=COMPONENT, section=SECTION, proposes=("db.cancel", "db.terminate"))
async def blocking_sessions(ctx: CheckContext) -> list[Finding]:
    async with ctx.targets.pg.connect() as conn:
        rows = await conn.fetch(SESSIONS)
    sessions = {row["pid"]: dict(row) for row in rows}
    groups = root_blockers(sessions)
    if not groups:
        idle = [s for s in sessions.values() if s["state"] == "idle in transaction" and (s["xact_s"] or 0) >= 60]
        details = [f"{len(sessions)} other sessions on database {ctx.targets.pg.database}"]
        details += [
            f"idle in transaction for {age(s['xact_s'])} (blocks nobody yet): pid {s['pid']}, {who(s)}"
            for s in idle[:MAX_VICTIMS_SHOWN]
        ]
        return [
            Finding.ok(
                COMPONENT,
                "no session is waiting for a lock",
                details=details,
                data={"sessions": len(sessions), "blocked": 0},
            )
        ]
    ordered = sorted(groups.items(), key=lambda item: -len(item[1]))
    database = ctx.targets.pg.database
    findings = [blocker_finding(pid, victims, sessions, database) for pid, victims in ordered[:MAX_SHOWN]]
    findings[0].details.append(PREVENTION)
    if len(ordered) > MAX_SHOWN:
        rest = ordered[MAX_SHOWN:]
        findings.append(
            Finding.warn(
                COMPONENT,
                f"{len(rest)} more root blockers not shown",
                details=[f"pid {pid} blocks {len(v)}" for pid, v in rest[:20]],
            )
        )
    return findings


# --- db long-queries -------------------------------------------------------------------------

LONG_REASONS = {
    "cancel": "Cancelling stops this statement and rolls back its transaction; the session stays connected.",
    "terminate": "The stronger option, when cancelling does not help: ends the whole session.",
}


@runbook.check(
    "db long-queries",
    component=LONG_COMPONENT,
    section="Database Issues › Slow Query Performance",
    proposes=("db.cancel", "db.terminate"),
)
async def long_queries(ctx: CheckContext) -> list[Finding]:
    threshold = ctx.arg(LongQueriesArgs).seconds
    async with ctx.targets.pg.connect() as conn:
        rows = await conn.fetch(LONG_QUERIES, threshold)
    limit = f"{threshold:g} s"
    if not rows:
        return [Finding.ok(LONG_COMPONENT, f"no query has been running longer than {limit}", data={"count": 0})]
    findings = []
    for row in rows[:MAX_SHOWN]:
        details = session_lines(row)
        if row["blocked_by"]:
            details.append(
                f"it is waiting for a lock held by pid {', '.join(map(str, row['blocked_by']))} — see /erpgo db locks"
            )
        elif row["wait_event_type"]:
            details.append(f"waiting on {row['wait_event_type']}: {row['wait_event']}")
        status = Status.CRIT if (row["query_s"] or 0) >= CRIT_QUERY_S else Status.WARN
        title = f"pid {row['pid']} running for {age(row['query_s'])}: {short_query(row['query'], 80)}"
        findings.append(
            Finding(
                status,
                LONG_COMPONENT,
                title,
                details=details,
                proposals=proposals_for(row, "long_query", LONG_REASONS, ctx.targets.pg.database),
                data={"pid": row["pid"], "running_s": round(float(row["query_s"] or 0), 1)},
            )
        )
    if len(rows) > MAX_SHOWN:
        findings.append(Finding.warn(LONG_COMPONENT, f"{len(rows) - MAX_SHOWN} more queries over {limit} not shown"))
    return findings


# --- remediations ----------------------------------------------------------------------------

SESSION_BY_PID = f"""
SELECT a.pid, a.usename, a.application_name, a.state, a.backend_start, a.query_start,
       extract(epoch FROM now() - a.state_change) AS state_s,
       {STILL_BLOCKING} AS blocking,
       (SELECT count(*) FROM pg_stat_activity w
         WHERE w.wait_event_type = 'Lock' AND a.pid = ANY (pg_blocking_pids(w.pid))) AS victims
FROM pg_stat_activity a WHERE a.pid = $1
"""


def parse_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


async def recheck(
    conn, kind: str, pid: int, backend_start: datetime, because: str, query_start: datetime | None
) -> dict:
    """The session as it is now, if acting on it is still right; Refused (saying why) otherwise."""
    row = await conn.fetchrow(SESSION_BY_PID, pid)
    if row is None:
        raise Refused(f"backend {pid} no longer exists: its session has already ended")
    if row["backend_start"] != backend_start:
        raise Refused(
            f"pid {pid} now belongs to a different session (started {row['backend_start']:%H:%M:%S}, "
            f"not {backend_start:%H:%M:%S}): the original one ended and its pid was reused"
        )
    if because == "blocking" and not row["blocking"]:
        raise Refused(f"backend {pid} no longer blocks any session: its locks have been released")
    if because == "long_query" and (row["state"] != "active" or row["query_start"] != query_start):
        raise Refused(f"the query of backend {pid} has finished (the session is now {row['state']})")
    if kind == "cancel" and row["state"] != "active":
        raise Refused(f"backend {pid} is {row['state']}: cancelling would not release its locks — terminate it instead")
    return dict(row)


async def observe(conn, kind: str, before: dict, because: str) -> tuple[bool, dict | None]:
    """Watch up to EFFECT_WAIT_S for the signal to take effect: (took effect, the session now)."""
    deadline = asyncio.get_running_loop().time() + EFFECT_WAIT_S
    while True:
        now = await conn.fetchrow(SESSION_BY_PID, before["pid"])
        same = now is not None and now["backend_start"] == before["backend_start"]
        if kind == "terminate":
            effect = not same
        else:
            effect = (
                not same
                or now["state"] != "active"
                or now["query_start"] != before["query_start"]
                or (because == "blocking" and not now["blocking"])
            )
        if effect or asyncio.get_running_loop().time() >= deadline:
            return effect, (dict(now) if same else None)
        await asyncio.sleep(0.1)  # polling the server for the backend's exit


async def signal_backend(
    ctx: CheckContext,
    kind: str,
    pid: int,
    backend_start: str,
    because: str,
    query_start: str | None,
    database: str | None,
) -> str:
    pg = ctx.targets.pg
    if database and database != pg.database:
        raise Refused(f"it was proposed for database {database}, but this bot watches {pg.database}")
    if because not in ("blocking", "long_query"):
        raise Refused(f"unknown reason {because!r} in the approval")
    started, query_started = parse_time(backend_start), parse_time(query_start)
    if started is None:
        raise Refused("the approval does not say which session it was proposed for (no backend start)")
    async with pg.connect(application_name="erpgo-chatops-remediation") as conn:
        before = await recheck(conn, kind, int(pid), started, because, query_started)
        params = [int(pid), started] + ([query_started] if because == "long_query" else [])
        signalled = await conn.fetchval(signal_statement(kind, because), *params)
        if signalled is None:
            raise Refused(f"backend {pid} changed just before acting (it ended, or stopped blocking)")
        if not signalled:
            raise Refused(f"PostgreSQL could not signal backend {pid} (it has just exited)")
        effect, after = await observe(conn, kind, before, because)
    victims = before["victims"]
    target = f"backend {pid} ({who(before)})"
    if kind == "terminate":
        if not effect:
            return f"sent the terminate signal to {target}, but it had not exited {EFFECT_WAIT_S:g} s later — run the check again"
        line = f"terminated {target}; its session is gone"
    else:
        if not effect:
            return f"sent the cancel signal to {target}, but its query was still running {EFFECT_WAIT_S:g} s later — consider terminating it"
        line = f"cancelled the query of {target}; its transaction rolled back"
    if because == "blocking" and victims:
        still = after["victims"] if after else 0
        if still:
            line += f"; it still blocks {still} session{'s' if still != 1 else ''}"
        else:
            line += f"; the {victims} session{'s' if victims != 1 else ''} it blocked can proceed"
    return line


@runbook.remediation("db.cancel", "Cancel a backend's running query (pg_cancel_backend)", timeout=15)
async def cancel_backend(
    ctx: CheckContext,
    pid: int,
    backend_start: str,
    because: str = "blocking",
    query_start: str | None = None,
    database: str | None = None,
) -> str:
    return await signal_backend(ctx, "cancel", pid, backend_start, because, query_start, database)


@runbook.remediation("db.terminate", "Terminate a backend: end its session (pg_terminate_backend)", timeout=15)
async def terminate_backend(
    ctx: CheckContext,
    pid: int,
    backend_start: str,
    because: str = "blocking",
    query_start: str | None = None,
    database: str | None = None,
) -> str:
    return await signal_backend(ctx, "terminate", pid, backend_start, because, query_start, database)
