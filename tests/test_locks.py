"""/erpgo db locks and /erpgo db long-queries against a real PostgreSQL with real lock waits, and the
db.cancel / db.terminate remediations re-checking the world before they act."""

from __future__ import annotations

import asyncio
from datetime import datetime

import asyncpg
import pytest

from bot.core.registry import Refused, UsageError
from bot.settings import load_settings
from runbooks.database.locks import LongQueriesArgs, blocker_finding, parse_seconds, root_blockers
from tests import harness
from tests.db_support import Blocking
from tests.support import eventually


@pytest.fixture
async def blocking():
    """Factory: `scenario = await blocking(dsn, active=False)`; everything is closed afterwards."""
    made: list[Blocking] = []

    async def make(dsn: str, *, active: bool = False) -> Blocking:
        scenario = Blocking(dsn)
        made.append(scenario)
        return await scenario.start(active=active)

    yield make
    for scenario in made:
        await scenario.close()


async def run_verb(dsn: str, words: str):
    return await harness.run_words(words, load_settings(erpgo_database_url=dsn))


async def remediate(dsn: str, action: str, **args) -> str:
    return await harness.remediate(action, load_settings(erpgo_database_url=dsn), **args)


# --- db locks --------------------------------------------------------------------------------


async def test_idle_in_transaction_blocker_is_found_with_terminate_only(fresh_database, blocking):
    dsn = fresh_database("locks")
    scenario = await blocking(dsn)
    findings = await run_verb(dsn, "db locks")
    assert len(findings) == 1
    finding = findings[0]
    assert finding.status.value == "crit"
    assert f"pid {scenario.blocker_pid} (idle in transaction" in finding.title and "blocks 1 session" in finding.title
    text = "\n".join(finding.details)
    assert "application billing-worker" in text and "last query: SELECT * FROM accounts WHERE id = 1 FOR UPDATE" in text
    assert f"pid {scenario.waiter_pid} (postgres) waiting" in text and "UPDATE accounts SET balance" in text
    assert [p.action for p in finding.proposals] == ["db.terminate"], "cancel would not release an idle session's locks"
    proposal = finding.proposals[0]
    assert proposal.args["pid"] == scenario.blocker_pid
    assert datetime.fromisoformat(proposal.args["backend_start"]) == scenario.backend_start
    assert "cancelling would not release its locks" in proposal.reason
    assert "pg_terminate_backend(a.pid)" in proposal.preview and f"a.pid = {scenario.blocker_pid}" in proposal.preview
    assert finding.section == "Database Issues › Database Locks and Deadlocks"


async def test_active_blocker_gets_cancel_and_terminate(fresh_database, blocking):
    dsn = fresh_database("locks")
    scenario = await blocking(dsn, active=True)
    findings = await run_verb(dsn, "db locks")
    assert [p.action for p in findings[0].proposals] == ["db.cancel", "db.terminate"]
    assert f"pid {scenario.blocker_pid} (active" in findings[0].title
    # cancel stops the running statement: the transaction rolls back and the waiter goes on
    result = await remediate(dsn, "db.cancel", **findings[0].proposals[0].args)
    assert result.startswith(f"cancelled the query of backend {scenario.blocker_pid}")
    assert "the 1 session it blocked can proceed" in result
    assert await scenario.update_finished() == "UPDATE 1"
    assert await scenario.blocker_alive(), "cancel keeps the session"


def session(pid: int, state: str, query_s: float, blocked_by: list[int]) -> dict:
    started = datetime(2026, 1, 1)
    return {
        "pid": pid,
        "usename": "erpgo",
        "application_name": "erpgo-api",
        "client": "10.0.0.5",
        "state": state,
        "backend_type": "client backend",
        "backend_start": started,
        "query_start": started,
        "query": "UPDATE orders SET status = 'SHIPPED' WHERE id = $1",
        "state_s": query_s,
        "xact_s": query_s,
        "query_s": query_s,
        "blocked_by": blocked_by,
    }


def test_a_wait_of_the_guides_ten_seconds_is_critical_as_in_db():
    """One threshold, the guide's "Lock wait time > 10 seconds", shared with `db`."""
    sessions = {1: session(1, "active", 20, []), 2: session(2, "active", 12, [1])}
    finding = blocker_finding(1, {2}, sessions, "erp")
    assert finding.status.value == "crit" and "the longest has waited 12s" in finding.title
    sessions[2]["query_s"] = 4
    assert blocker_finding(1, {2}, sessions, "erp").status.value == "warn"


async def test_a_blocked_report_says_how_to_prevent_it(fresh_database, blocking):
    dsn = fresh_database("locks")
    await blocking(dsn)
    [finding] = await run_verb(dsn, "db locks")
    text = "\n".join(finding.details)
    assert "take row locks in one order everywhere" in text and "keep transactions short" in text
    assert "lock_timeout" in text


async def test_no_blocked_sessions_is_ok(fresh_database):
    findings = await run_verb(fresh_database("locks"), "db locks")
    assert [(f.status.value, f.title) for f in findings] == [("ok", "no session is waiting for a lock")]


def test_chains_are_grouped_by_root_blocker():
    sessions = {
        1: {"blocked_by": []},  # root
        2: {"blocked_by": [1]},
        3: {"blocked_by": [2]},  # waits for 2, which waits for 1
        4: {"blocked_by": []},
        5: {"blocked_by": [4, 1]},
    }
    assert root_blockers(sessions) == {1: {2, 3, 5}, 4: {5}}
    cycle = {7: {"blocked_by": [8]}, 8: {"blocked_by": [7]}}
    assert root_blockers(cycle) == {8: {7}, 7: {8}}


async def test_unreachable_database_is_a_finding(postgres_server):
    from demo.services import free_port

    findings = await run_verb(f"postgresql://postgres@127.0.0.1:{free_port()}/erp", "db locks")
    assert findings[0].status.value == "crit" and "unreachable" in findings[0].title


# --- the remediations re-check the world ------------------------------------------------------


async def test_terminate_ends_the_blocker_and_the_waiter_proceeds(fresh_database, blocking):
    dsn = fresh_database("locks")
    scenario = await blocking(dsn)
    args = (await run_verb(dsn, "db locks"))[0].proposals[0].args
    result = await remediate(dsn, "db.terminate", **args)
    assert result == (
        f"terminated backend {scenario.blocker_pid} (user postgres, application billing-worker); "
        "its session is gone; the 1 session it blocked can proceed"
    )
    assert await scenario.update_finished() == "UPDATE 1"
    assert not await scenario.blocker_alive()


async def test_terminate_refuses_a_recycled_pid(fresh_database, blocking):
    """Same pid, different backend_start: the session it was proposed for is gone."""
    dsn = fresh_database("locks")
    scenario = await blocking(dsn)
    args = (await run_verb(dsn, "db locks"))[0].proposals[0].args
    args["backend_start"] = "2001-01-01T00:00:00+00:00"
    with pytest.raises(Refused, match=r"belongs to a different session.*pid was reused"):
        await remediate(dsn, "db.terminate", **args)
    assert await scenario.blocker_alive()


async def test_terminate_refuses_when_the_pid_is_gone(fresh_database, blocking):
    dsn = fresh_database("locks")
    scenario = await blocking(dsn)
    args = (await run_verb(dsn, "db locks"))[0].proposals[0].args
    await scenario.blocker.close()
    await scenario.update_finished()
    with pytest.raises(Refused, match="no longer exists"):
        await remediate(dsn, "db.terminate", **args)


async def test_terminate_refuses_when_the_lock_is_released(fresh_database, blocking):
    dsn = fresh_database("locks")
    scenario = await blocking(dsn)
    args = (await run_verb(dsn, "db locks"))[0].proposals[0].args
    await scenario.blocker.execute("ROLLBACK")  # the session stays, the lock is gone
    await scenario.update_finished()
    with pytest.raises(Refused, match="no longer blocks any session"):
        await remediate(dsn, "db.terminate", **args)
    assert await scenario.blocker_alive()


async def test_cancel_refuses_an_idle_in_transaction_session(fresh_database, blocking):
    dsn = fresh_database("locks")
    scenario = await blocking(dsn)
    args = (await run_verb(dsn, "db locks"))[0].proposals[0].args
    with pytest.raises(Refused, match="cancelling would not release its locks"):
        await remediate(dsn, "db.cancel", **args)
    assert await scenario.blocker_alive()


async def test_remediation_refuses_another_database(fresh_database, blocking):
    dsn = fresh_database("locks")
    await blocking(dsn)
    args = (await run_verb(dsn, "db locks"))[0].proposals[0].args
    with pytest.raises(Refused, match="proposed for database"):
        await remediate(fresh_database("other"), "db.terminate", **args)


# --- db long-queries -------------------------------------------------------------------------


async def test_long_query_is_listed_with_cancel_and_terminate(fresh_database):
    dsn = fresh_database("slow")
    sleeper = await asyncpg.connect(dsn, server_settings={"application_name": "report-job"})
    sleeping = asyncio.create_task(sleeper.execute("SELECT pg_sleep(60) /* monthly report */"))
    pid = sleeper.get_server_pid()
    try:

        async def running_long():
            conn = await asyncpg.connect(dsn)
            try:
                return await conn.fetchval(
                    "SELECT now() - query_start > interval '0.3 s' FROM pg_stat_activity"
                    " WHERE pid = $1 AND state = 'active'",
                    pid,
                )
            finally:
                await conn.close()

        await eventually(running_long, what="the query to run for 0.3 s")
        assert [f.title for f in await run_verb(dsn, "db long-queries 30")] == [
            "no query has been running longer than 30 s"
        ]
        findings = await run_verb(dsn, "db long-queries 0.3")
        assert len(findings) == 1 and findings[0].status.value == "warn"
        assert findings[0].title.startswith(f"pid {pid} running for") and "pg_sleep(60)" in findings[0].title
        assert [p.action for p in findings[0].proposals] == ["db.cancel", "db.terminate"]
        args = findings[0].proposals[0].args
        assert args["because"] == "long_query" and "query_start" in args
        result = await remediate(dsn, "db.cancel", **args)
        assert result.startswith(f"cancelled the query of backend {pid} (user postgres, application report-job)")
        with pytest.raises(asyncpg.QueryCanceledError):
            await asyncio.wait_for(sleeping, 5)
        with pytest.raises(Refused, match="has finished"):  # the same proposal, approved again
            await remediate(dsn, "db.terminate", **args)
    finally:
        sleeping.cancel()
        sleeper.terminate()


@pytest.mark.parametrize(
    "words, seconds", [([], 5.0), (["12"], 12.0), (["2.5"], 2.5), (["30s"], 30.0), (["86400"], 86400.0)]
)
def test_long_queries_argument(words, seconds):
    assert parse_seconds(words) == LongQueriesArgs(seconds)


@pytest.mark.parametrize("words", [["0"], ["-3"], ["86401"], ["nan"], ["inf"], ["soon"], ["1", "2"]])
def test_long_queries_bad_argument(words):
    with pytest.raises(UsageError):
        parse_seconds(words)


async def test_bad_argument_gets_usage_in_slack(start_bot):
    bot = await start_bot()
    result = await bot.command("db long-queries forever")
    text = result.json["blocks"][0]["text"]["text"]
    assert "is not a number of seconds" in text and "/erpgo db long-queries [seconds]" in text
    assert bot.slack.channel_messages("C0OPS") == []
