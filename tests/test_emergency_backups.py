"""`/erpgo backups` and `backup.now` with the real pg_dump and pg_restore on a database with rows: a dump
taken through the bot and two approvers that pg_restore reads back, an old dump warned about, a
truncated one flagged, dumps kept in a container listed and read back through the Docker Engine."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from bot.core.findings import Status
from bot.local.text import render_text
from bot.targets.backups import dump, list_backups, verify
from tests.db_support import one, run_verb, text_of
from tests.emergency_support import (
    CHANNEL,
    POLICY,
    approval_messages,
    audit,
    click,
    concurrent_clicks,
    current,
    make_shop,
    remediate,
    told,
)

TIMEOUT = 60.0
HOUR = 3600


@pytest.fixture
async def shop(fresh_database) -> str:
    dsn = fresh_database("erp")
    await make_shop(dsn)
    return dsn


@pytest.fixture
def policy_file(tmp_path) -> str:
    path = tmp_path / "policy.yml"
    path.write_text(POLICY)
    return str(path)


def age(path: str, hours: float) -> None:
    then = time.time() - hours * HOUR
    os.utime(path, (then, then))


async def dumps_in(directory: Path, shop: str, *hours_old: float) -> list[str]:
    """One real dump per age, oldest first, each with that modification time."""
    made = []
    for hours in sorted(hours_old, reverse=True):
        backup, _ = await dump(shop, str(directory), prefix="erp", timeout=TIMEOUT)
        renamed = directory / f"erp_{len(made):02d}.dump"
        os.rename(backup.path, renamed)
        age(str(renamed), hours)
        made.append(str(renamed))
    return made


# --- /erpgo backups ------------------------------------------------------------------------------


async def test_fresh_dumps_are_found_sized_and_read_back(shop, tmp_path):
    await dumps_in(tmp_path, shop, 72, 48, 24.5, 1)
    findings = await run_verb("backups", shop, erpgo_backup_dir=str(tmp_path))
    newest = one(findings, "Backups")
    assert newest.status is Status.OK and newest.title.startswith("newest erp_03.dump, 1h")
    assert "4 kept" in newest.title and newest.proposals == []
    assert str(tmp_path) in text_of(newest)
    assert one(findings, "Backup sizes").status is Status.OK
    retention = one(findings, "Backup retention")
    assert retention.status is Status.WARN and "4 dumps kept, the oldest 3d" in retention.title
    for name in ("erp_03.dump", "erp_02.dump", "erp_01.dump"):
        read = one(findings, f"Dump {name}")
        assert read.status is Status.OK and read.title.startswith("readable: 3 tables"), read
    assert not [f for f in findings if f.component == "Dump erp_00.dump"], "only the recent ones are read back"


@pytest.mark.parametrize(("hours", "status", "limit"), [(30, Status.WARN, "24 h"), (50, Status.CRIT, "48 h")])
async def test_an_old_newest_dump_is_flagged_and_a_dump_proposed(shop, tmp_path, hours, status, limit):
    await dumps_in(tmp_path, shop, hours)
    newest = one(await run_verb("backups", shop, erpgo_backup_dir=str(tmp_path)), "Backups")
    assert newest.status is status and newest.title.endswith(f"older than {limit}")
    [proposal] = newest.proposals
    assert proposal.action == "backup.now" and proposal.args == {
        "location": f"dir:{tmp_path}",
        "database": shop.rsplit("/", 1)[1],
    }
    assert "pg_dump -Fc --no-password" in proposal.preview and "password via PGPASSWORD" in proposal.preview


async def test_a_truncated_dump_is_flagged_unreadable_and_its_size_suspicious(shop, tmp_path):
    [_, newer] = await dumps_in(tmp_path, shop, 26, 2)
    cut = tmp_path / "erp_99.dump"
    data = Path(newer).read_bytes()
    cut.write_bytes(data[: len(data) // 3])
    findings = await run_verb("backups", shop, erpgo_backup_dir=str(tmp_path))
    broken = one(findings, "Dump erp_99.dump")
    assert broken.status is Status.CRIT and broken.title.startswith("not readable by pg_restore")
    sizes = one(findings, "Backup sizes")
    assert sizes.status is Status.WARN and "a sudden drop" in sizes.title
    assert one(findings, f"Dump {Path(newer).name}").status is Status.OK


async def test_no_directory_or_no_dumps_is_critical(shop, tmp_path):
    missing = one(await run_verb("backups", shop, erpgo_backup_dir=str(tmp_path / "nowhere")), "Backups")
    assert missing.status is Status.CRIT and "does not exist" in missing.title
    empty = one(await run_verb("backups", shop, erpgo_backup_dir=str(tmp_path)), "Backups")
    assert empty.status is Status.CRIT and empty.title.startswith("no dumps") and empty.proposals
    assert one(await run_verb("backups", shop), "Backups").status is Status.SKIPPED


# --- backup.now through the bot, two approvers ---------------------------------------------------


async def test_backup_now_needs_two_other_people_and_writes_a_readable_dump(
    start_bot, shop, fresh_database, policy_file, tmp_path
):
    bot_db = fresh_database("bot")
    bot = await start_bot(
        bot_database_url=bot_db,
        erpgo_database_url=shop,
        erpgo_backup_dir=str(tmp_path),
        chatops_policy_file=policy_file,
    )
    await bot.command("backups now", user_id="U0ALICE")
    head = bot.slack.channel_messages(CHANNEL)[-1]
    [message] = approval_messages(bot.slack, head["ts"])
    shown = render_text(message)
    assert "Dump database" in shown and "2 different people, none of them the requester" in shown
    assert "Needs 2 approvals — approved so far: nobody yet (0 of 2)" in shown

    await click(bot, message, "U0ALICE")  # the requester
    assert any("needs 2 approvals from other people" in t for t in told(bot.slack, "U0ALICE"))
    await click(bot, message, "U0BOB")
    assert list_backups(str(tmp_path)) == [], "one approval of two runs nothing"
    assert any("Your approval of #1 is recorded (1 of 2)" in t for t in told(bot.slack, "U0BOB"))
    still = current(bot.slack, message)
    assert bot.slack.buttons(still) and "approved so far: @U0BOB (1 of 2)" in render_text(still)
    await click(bot, message, "U0BOB")  # the same person again
    assert any("You have approved #1 already" in t for t in told(bot.slack, "U0BOB"))
    assert list_backups(str(tmp_path)) == []

    await click(bot, message, "U0CAROL")
    [written] = list_backups(str(tmp_path))
    toc = await verify(written.path, timeout=TIMEOUT)
    assert {"public.users", "public.products", "public.orders"} <= set(toc.tables)
    done = render_text(current(bot.slack, message))
    assert bot.slack.buttons(current(bot.slack, message)) == []
    assert f"approved by @U0BOB and @U0CAROL — executed: wrote {written.name}" in done
    assert "pg_restore read it back whole" in done
    assert [(actor, event) for actor, event, _, _ in await audit(bot_db)] == [
        ("U0ALICE", "proposed"),
        ("U0ALICE", "refused"),
        ("U0BOB", "approved"),
        ("U0BOB", "refused"),
        ("U0CAROL", "approved"),
        ("U0CAROL", "executed"),
        ("bot", "verified"),
    ]
    assert (await audit(bot_db))[2][3] == "pending: 1 of 2 approvals"
    assert (await audit(bot_db))[-1][3] == "verified", "the backups check finds the new dump fresh"
    assert "Verified*: " in render_text(current(bot.slack, message))


async def test_twenty_concurrent_clicks_of_two_approvers_on_two_replicas_dump_once(
    start_bot, shop, fresh_database, policy_file, tmp_path
):
    bot_db = fresh_database("bot")
    settings = {
        "bot_database_url": bot_db,
        "erpgo_database_url": shop,
        "erpgo_backup_dir": str(tmp_path),
        "chatops_policy_file": policy_file,
    }
    first = await start_bot(**settings)
    second = await start_bot(slack=first.slack, **settings)
    await second.command("backups now", user_id="U0ALICE")
    head = first.slack.channel_messages(CHANNEL)[-1]
    [message] = approval_messages(first.slack, head["ts"])
    clicks = [
        (bot.base_url + "/slack/events", user)
        for _ in range(5)
        for bot in (first, second)
        for user in ("U0BOB", "U0CAROL")
    ]
    answers = await concurrent_clicks(first.slack, message, clicks)
    await first.settle(timeout=120)
    await second.settle(timeout=120)

    assert all(status == 200 and elapsed < 3 for status, elapsed in answers), answers
    assert len(list_backups(str(tmp_path))) == 1, "exactly one dump"
    rows = await audit(bot_db)
    assert [r[3] for r in rows if r[1] == "executed"] == ["succeeded"]
    approved = [(r[0], r[3]) for r in rows if r[1] == "approved"]
    assert sorted(outcome for _, outcome in approved) == ["executing", "pending: 1 of 2 approvals"]
    assert {user for user, _ in approved} == {"U0BOB", "U0CAROL"}
    assert len([r for r in rows if r[1] == "refused"]) == 18
    print(f"\ntwo approvers: {len(clicks)} clicks on 2 replicas -> {len(list_backups(str(tmp_path)))} dump")


# --- dumps kept in a container ----------------------------------------------------------------------


async def test_dumps_in_a_container_are_listed_read_back_and_written(shop, tmp_path, docker_engine, names):
    container = names("pg")
    docker_engine.run(container, "mkdir -p /backups && sleep 100000")
    local = tmp_path / "local"
    local.mkdir()
    [made] = await dumps_in(local, shop, 30)
    docker_engine.docker("cp", made, f"{container}:/backups/erp_old.dump")
    settings = {"erpgo_backup_dir": "/backups", "erpgo_backup_container": container, "docker_host": docker_engine.host}

    findings = await run_verb("backups", shop, **settings)
    newest = one(findings, "Backups")
    assert newest.title.startswith("newest erp_old.dump") and f"/backups in container {container}" in text_of(newest)
    assert one(findings, "Dump erp_old.dump").status is Status.OK, "copied out and read back by pg_restore"

    result = await remediate(
        "backup.now",
        shop,
        {"location": f"container:{container}:/backups", "database": shop.rsplit("/", 1)[1]},
        **settings,
    )
    assert "pg_restore read it back whole" in result
    listed = docker_engine.docker("exec", container, "ls", "/backups").split()
    assert len(listed) == 2 and not any(name.startswith(".") for name in listed), listed
    again = await run_verb("backups", shop, **settings)
    assert one(again, "Backups").status is Status.OK
    assert all(f.status is Status.OK for f in again if f.component.startswith("Dump "))
    shutil.rmtree(local)
