"""`/erpgo restore` and `db.restore` end to end, through the real bot and two approvers, on a database
with rows, the real pg_restore, an API container on the test engine and the simulator's /health:
the live name ends up with the dump's rows and the old data is kept row for row; a corrupt dump stops
before anything is renamed; a bot process killed after the first rename leaves both databases, and
the next bot flags the approval for a person and settles it through `db.restore_resume`."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
import uuid
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from bot.local.slack import LocalSlack
from bot.local.text import render_text
from bot.targets.backups import DumpUnreadable, dump, verify, with_database
from demo.services import free_port
from tests.emergency_support import (
    CHANNEL,
    POLICY,
    add_rows,
    approval_messages,
    click,
    current,
    fetch,
    make_shop,
    snapshot,
)
from tests.support import eventually

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 60.0
API_SCRIPT = "trap 'exit 0' TERM; sleep 100000 & wait"
HOLD = 4242  # the advisory lock the test holds to stop a bot in the middle of the restore


class Shop:
    """The live database (dumped, then written to again), its dump, and the API container."""

    def __init__(self, admin_dsn: str, live: str, dump_dir: Path, dump_name: str, at_dump, live_rows, api: str):
        self.admin_dsn, self.live, self.dump_dir, self.dump_name = admin_dsn, live, dump_dir, dump_name
        self.at_dump, self.live_rows, self.api = at_dump, live_rows, api

    @property
    def live_dsn(self) -> str:
        return with_database(self.admin_dsn, self.live)

    async def databases(self) -> dict[str, str]:
        """{role: name} of the live database and this restore's copies that exist now."""
        rows = await fetch(self.admin_dsn, "SELECT datname FROM pg_database WHERE datname LIKE $1", f"{self.live}%")
        found = {}
        for name in (r["datname"] for r in rows):
            if name == self.live:
                found["live"] = name
            elif name.startswith(f"{self.live}_before_restore_"):
                found["before"] = name
            elif name.startswith(f"{self.live}_restore_"):
                found["restored"] = name
        return found


@pytest.fixture
async def shop(fresh_database, tmp_path, docker_engine, names) -> Shop:
    live_dsn = fresh_database("erp")
    await make_shop(live_dsn)
    dumps = tmp_path / "backups"
    dumps.mkdir()
    backup, _ = await dump(live_dsn, str(dumps), prefix="erp", timeout=TIMEOUT)
    at_dump = await snapshot(live_dsn)
    conn = await asyncpg.connect(live_dsn)
    try:
        await add_rows(conn, users=2, products=1, orders=3)  # written after the dump: kept in the old database
    finally:
        await conn.close()
    api = names("api")
    docker_engine.run(api, API_SCRIPT)
    return Shop(
        with_database(live_dsn, "postgres"),
        live_dsn.rsplit("/", 1)[1],
        dumps,
        backup.name,
        at_dump,
        await snapshot(live_dsn),
        api,
    )


@pytest.fixture
def settings(shop, fresh_database, tmp_path, docker_engine, simulator) -> dict:
    policy = tmp_path / "policy.yml"
    policy.write_text(POLICY)
    return {
        "bot_database_url": fresh_database("bot"),
        "erpgo_database_url": shop.live_dsn,
        "erpgo_backup_dir": str(shop.dump_dir),
        "docker_host": docker_engine.host,
        "erpgo_containers": shop.api,
        "erpgo_api_url": simulator.url,
        "chatops_policy_file": str(policy),
    }


def api_events(engine, api: str, since: str) -> list[str]:
    out = engine.docker(
        "events",
        "--since",
        since,
        "--until",
        str(int(time.time()) + 1),
        "--filter",
        f"container={api}",
        "--format",
        "{{.Action}}",
    )
    return [line for line in out.splitlines() if line in ("stop", "die", "start", "kill")]


async def propose_restore(bot, shop: Shop) -> dict:
    await bot.command(f"restore {shop.dump_name}", user_id="U0ALICE")
    head = bot.slack.channel_messages(CHANNEL)[-1]
    [message] = approval_messages(bot.slack, head["ts"])
    return message


# --- the restore --------------------------------------------------------------------------------------


async def test_restore_through_two_approvers_keeps_the_old_data_row_for_row(start_bot, shop, settings, docker_engine):
    bot = await start_bot(**settings)
    listing = await bot.command("restore")
    assert listing.status == 200
    head = bot.slack.channel_messages(CHANNEL)[-1]
    assert f"the newest is {shop.dump_name}" in render_text(head)
    assert f"/erpgo restore {shop.dump_name}" in render_text(bot.slack.thread(CHANNEL, head["ts"])[0])

    message = await propose_restore(bot, shop)
    shown = render_text(message)
    assert f"Restore database {shop.live} from {shop.dump_name}" in shown and "Needs 2 approvals" in shown
    assert (
        f"ALTER DATABASE {shop.live} RENAME TO {shop.live}_before_restore_" in shown and "nothing is dropped" in shown
    )
    since = str(int(time.time()))
    await click(bot, message, "U0BOB")
    assert await shop.databases() == {"live": shop.live}, "one approval of two changes nothing"
    await click(bot, message, "U0CAROL")

    done = render_text(current(bot.slack, message))
    assert f"approved by @U0BOB and @U0CAROL — executed: restored {shop.live} from the dump" in done, done
    assert "users: restored 3 rows, live 5 rows" in done
    found = await shop.databases()
    assert set(found) == {"live", "before"}, found
    assert await snapshot(shop.live_dsn) == shop.at_dump, "the live name holds the dump's rows"
    assert await snapshot(with_database(shop.admin_dsn, found["before"])) == shop.live_rows, "the old data, row for row"
    events = api_events(docker_engine, shop.api, since)
    assert "stop" in events and events[-1] == "start", events
    progress = (await fetch(settings["bot_database_url"], "SELECT progress FROM approvals WHERE id = 1"))[0]["progress"]
    assert '"step": "finished"' in progress and '"status": "done"' in progress


async def test_a_corrupt_dump_stops_before_anything_is_renamed(start_bot, shop, settings, docker_engine):
    bot = await start_bot(**settings)
    message = await propose_restore(bot, shop)
    path = shop.dump_dir / shop.dump_name
    stat = path.stat()
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 64] = b"\xff" * 64  # same size, same time: only reading it all shows the damage
    path.write_bytes(bytes(data))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    with pytest.raises(DumpUnreadable):
        await verify(str(path), timeout=TIMEOUT)
    since = str(int(time.time()))

    await click(bot, message, "U0BOB")
    await click(bot, message, "U0CAROL")

    done = render_text(current(bot.slack, message))
    assert "failed: restore stopped at verify" in done and "nothing had been changed yet" in done, done
    assert await shop.databases() == {"live": shop.live}
    assert await snapshot(shop.live_dsn) == shop.live_rows, "the live database is untouched"
    assert "stop" not in api_events(docker_engine, shop.api, since), "the API was never stopped"


# --- a bot killed in the middle -------------------------------------------------------------------------


async def start_bot_process(slack: LocalSlack, settings: dict, log_path: Path) -> asyncio.subprocess.Process:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ERPGO_", "SLACK_", "BOT_", "CHATOPS_", "DOCKER_"))}
    env |= {key.upper(): str(value) for key, value in settings.items()}
    env |= {
        "SLACK_BOT_TOKEN": slack.bot_token,
        "SLACK_SIGNING_SECRET": slack.signing_secret,
        "SLACK_API_URL": slack.api_url,
    }
    with open(log_path, "ab") as log:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot.cli",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            env=env,
            cwd=ROOT,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log,
            stderr=log,
        )

    async def answers() -> bool:
        try:
            async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/healthz") as response:
                return response.status == 200
        except aiohttp.ClientError:
            return False

    await eventually(answers, timeout=30, what="the bot process answering /healthz")
    slack.bot_url = f"http://127.0.0.1:{port}/slack/events"
    return proc


HOLD_TRIGGER = f"""
CREATE FUNCTION test_hold_restore() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.progress->>'step' = 'rename_restored' THEN PERFORM pg_advisory_xact_lock({HOLD}); END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER test_hold_restore BEFORE UPDATE ON approvals FOR EACH ROW EXECUTE FUNCTION test_hold_restore();
"""


async def test_a_bot_killed_after_the_first_rename_leaves_both_databases_and_a_flag(
    start_bot, shop, settings, tmp_path, docker_engine
):
    bot_db = settings["bot_database_url"]
    async with LocalSlack(uuid.uuid4().hex) as slack:
        proc = await start_bot_process(slack, settings, tmp_path / "bot.log")
        holder = await asyncpg.connect(bot_db)
        try:
            await holder.execute(HOLD_TRIGGER)
            await holder.execute("SELECT pg_advisory_lock($1)", HOLD)
            await slack.slash(f"restore {shop.dump_name}", user_id="U0ALICE")
            messages = await eventually(
                lambda: [m for m in slack.messages.values() if slack.buttons(m)],
                timeout=30,
                what="the approval message",
            )
            for user in ("U0BOB", "U0CAROL"):
                await slack.click(messages[0], "approval.approve", user_id=user)
            waiting = await eventually(
                lambda: holder.fetchval(
                    "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND wait_event = 'advisory'"
                    " AND datname = current_database()"
                ),
                timeout=60,
                what="the restore recording its second rename",
            )
            assert set(await shop.databases()) == {"before", "restored"}, "killed between the two renames"
            proc.send_signal(signal.SIGKILL)
            await proc.wait()
            await holder.execute("SELECT pg_terminate_backend($1)", waiting)
            await holder.execute("DROP TRIGGER test_hold_restore ON approvals; DROP FUNCTION test_hold_restore()")
            await holder.execute("SELECT pg_advisory_unlock($1)", HOLD)
        finally:
            if proc.returncode is None:
                proc.kill()
            await holder.close()

        assert set(await shop.databases()) == {"before", "restored"}, "both databases are still there"
        bot = await start_bot(slack=slack, **settings)

        async def flagged() -> str:
            text = render_text((await bot.command("approvals")).json)
            return text if "needs a person" in text else ""

        listing = await eventually(flagged, timeout=20, what="/erpgo approvals flagging the restore")
        assert f"#1 Restore database {shop.live} from {shop.dump_name}" in listing
        assert "stopped mid-way at step `rename_live` (done): no bot process is running it" in listing
        assert "`/erpgo restore resume 1` proposes settling it" in listing

        await bot.command("restore resume 1", user_id="U0ALICE")
        head = bot.slack.channel_messages(CHANNEL)[-1]
        [resume] = approval_messages(bot.slack, head["ts"])
        assert "Settle the restore of approval #1" in render_text(resume)
        await click(bot, resume, "U0BOB")
        await click(bot, resume, "U0CAROL")

        done = render_text(current(bot.slack, resume))
        assert f"renamed {shop.live}_before_restore_" in done and "started the API container again" in done, done
        assert set(await shop.databases()) == {"live", "restored"}
        assert await snapshot(shop.live_dsn) == shop.live_rows, "the live name serves the data the API last ran on"
        assert docker_engine.docker("inspect", "--format", "{{.State.Running}}", shop.api).strip() == "true"
        first = (await fetch(bot_db, "SELECT state, result FROM approvals WHERE id = 1"))[0]
        assert first["state"] == "failed" and first["result"].startswith("stopped mid-way at rename_live (done)")
        assert "No open approvals." in render_text((await bot.command("approvals")).json)
