"""Permission Issues on the demo database, in both dialects (the real ERPGo's TEXT[] permissions and the
guide's JSONB ones): `role <name>`, `user <email> <permission>`, and answers seen by the asker alone."""

from __future__ import annotations

import json
import shlex

import pytest

from bot.context import Actor
from bot.core.findings import Finding, Status
from bot.core.registry import UsageError
from bot.settings import load_settings
from runbooks.auth import parse_user
from runbooks.auth.common import UserArgs
from runbooks.auth.permissions import RoleArgs, grants, parse_role
from tests import harness
from tests.demo_dialects import demo_database, guide_database  # noqa: F401  (fixtures)

# the permission names of each dialect: resource.action (the real seed), resource:action (the guide's)
READ_ORDERS = {"real": "orders.read", "guide": "orders:read"}
DELETE_USERS = {"real": "users.delete", "guide": "users:delete"}


async def run_verb(dsn: str, words: str) -> dict[str, Finding]:
    findings = await harness.run_words(words, load_settings(erpgo_database_url=dsn), actor=Actor("U0ALICE"))
    return {f.component: f for f in findings}


async def user(dsn: str, *words: str) -> dict[str, Finding]:
    return await run_verb(dsn, shlex.join(["user", *words]))


async def test_a_permission_one_of_the_roles_grants(demo_dsn):
    dialect, dsn = demo_dsn
    found = await user(dsn, "s.okafor@example.com", READ_ORDERS[dialect])
    permission = found["Permission"]
    assert permission.status is Status.OK
    assert permission.title == f"s.okafor@example.com has {READ_ORDERS[dialect]}, through sales"
    assert f"took {READ_ORDERS[dialect]} as a permission" in " ".join(found["Roles"].details)
    assert found["Roles"].proposals == []


async def test_a_permission_the_roles_lack_names_the_roles_that_grant_it(demo_dsn):
    dialect, dsn = demo_dsn
    permission = (await user(dsn, "s.okafor@example.com", DELETE_USERS[dialect]))["Permission"]
    assert permission.status is Status.WARN
    assert (
        permission.title == f"s.okafor@example.com does NOT have {DELETE_USERS[dialect]}: the API answers "
        '403 {"error":"Insufficient permissions","code":"INSUFFICIENT_PERMISSIONS"}'
    )
    if dialect == "real":
        assert permission.data["roles_granting"] == ["admin"]
        assert "`/erpgo user s.okafor@example.com <role>` proposes one" in permission.details[0]
    else:  # the guide's admin holds only `*`, which the real API does not expand
        assert permission.data["roles_granting"] == []


async def test_the_guides_wildcards_grant_nothing_as_in_the_real_api(guide_dsn):
    """ERPGo checks `$2 = ANY(r.permissions)`: a role holding `products:*` or `*` still gets the 403."""
    found = (await user(guide_dsn, "j.martin@example.com", "products:delete"))["Permission"]
    assert found.status is Status.WARN
    assert found.title.startswith("j.martin@example.com does NOT have products:delete")
    assert "manager holds products:*: ERPGo checks the exact permission, a wildcard grants nothing" in found.details
    admin = (await user(guide_dsn, "admin@example.com", "reports:export"))["Permission"]
    assert admin.status is Status.WARN and "admin holds *" in " ".join(admin.details)


async def test_a_user_without_roles_and_a_permission_nobody_has(erp_dsn):
    nobody = (await user(erp_dsn, "n.patel@example.com", "orders.read"))["Permission"]
    assert nobody.status is Status.WARN and "n.patel@example.com has no role at all" in nobody.details
    typo = (await user(erp_dsn, "admin@example.com", "orders.reed"))["Permission"]
    assert typo.status is Status.WARN and typo.data["roles_granting"] == []
    assert typo.details[0].startswith("no role grants it: check the spelling — permissions of orders: orders.create")


async def test_a_role_name_still_proposes_the_role(erp_dsn):
    found = await user(erp_dsn, "n.patel@example.com", "viewer")
    assert "Permission" not in found
    [proposal] = found["Roles"].proposals
    assert proposal.args == {"email": "n.patel@example.com", "role": "viewer"}
    unknown = await user(erp_dsn, "n.patel@example.com", "superuser")
    assert "no role named superuser" in unknown["Roles"].title
    assert "took superuser as a role: a permission has a `.` or `:` (e.g. orders.read)" in unknown["Roles"].details


async def test_a_role_shows_its_permissions_and_holders(demo_dsn):
    dialect, dsn = demo_dsn
    [role] = (await run_verb(dsn, "role sales")).values()
    permissions = {"real": 4, "guide": 5}[dialect]
    assert role.status is Status.OK
    assert role.title == f"sales: {permissions} permissions, held by 3 users (1 inactive)"
    assert role.data["holders"] == 3 and role.data["active_holders"] == 2
    assert "held by: e.dubois@example.com (inactive), p.novak@example.com, s.okafor@example.com" in role.details
    assert f"permissions ({permissions}): " in "\n".join(role.details) and READ_ORDERS[dialect] in "\n".join(
        role.details
    )


async def test_every_role_and_an_unknown_one(erp_dsn):
    [overview] = (await run_verb(erp_dsn, "role")).values()
    assert overview.title == "6 roles"
    assert "admin: 22 permissions, held by 1 user" in overview.details
    [unknown] = (await run_verb(erp_dsn, "role root")).values()
    assert unknown.status is Status.WARN and unknown.title == "no role named root"


async def test_role_and_user_answers_are_seen_by_the_asker_alone(start_bot, erp_dsn):
    bot = await start_bot(erpgo_database_url=erp_dsn)
    await bot.command("role manager")
    await bot.command("user a.kowalski@example.com orders.read")
    assert bot.slack.channel_messages("C0OPS") == []
    private = [e for e in bot.slack.ephemerals if e["source"] == "chat.postEphemeral"]
    assert len(private) == 4 and {e["user"] for e in private} == {"U0ALICE"}
    shown = json.dumps([e["blocks"] for e in private])
    assert "manager: 10 permissions, held by 2 users" in shown
    assert "a.kowalski@example.com has orders.read, through accountant, manager" in shown


async def test_a_private_proposal_still_reaches_the_channel_for_approval(start_bot, erp_dsn, fresh_database, tmp_path):
    policy = tmp_path / "policy.yml"
    policy.write_text(
        'groups:\n  oncall: [U0BOB]\nverbs:\n  "*": [everyone]\nactions:\n  "auth.*":\n    approvers: [oncall]\n'
    )
    bot = await start_bot(
        erpgo_database_url=erp_dsn, bot_database_url=fresh_database("bot"), chatops_policy_file=str(policy)
    )
    await bot.command("user n.patel@example.com sales")
    [root] = bot.slack.channel_messages("C0OPS")
    assert root["text"] == "<@U0ALICE> proposes a change that needs approval:"
    [approval] = bot.slack.thread("C0OPS", root["ts"])
    assert "Give n.patel@example.com the role sales" in json.dumps(approval)
    assert {b["text"] for b in bot.slack.buttons(approval)} >= {"Approve", "Reject"}
    private = [e for e in bot.slack.ephemerals if e["source"] == "chat.postEphemeral"]
    assert len(private) == 2 and "bcrypt" in json.dumps(private), "the account's report stays with the asker"
    assert "bcrypt" not in json.dumps(bot.slack.channel_messages("C0OPS") + [approval])


@pytest.mark.parametrize(
    "words, expected",
    [
        (["a@example.com", "orders.read"], UserArgs("a@example.com", permission="orders.read")),
        (["a@example.com", "products:*"], UserArgs("a@example.com", permission="products:*")),
        (["a@example.com", "viewer"], UserArgs("a@example.com", role="viewer")),
    ],
)
def test_a_permission_is_told_from_a_role_by_its_shape(words, expected):
    assert parse_user(words) == expected


def test_bad_role_arguments():
    with pytest.raises(UsageError):
        parse_role(["a", "b"])
    with pytest.raises(UsageError):
        parse_role(["ro;le"])
    assert parse_role([]) == RoleArgs()


def test_grants_is_exact_membership():
    assert grants(["orders.read"], "orders.read")
    assert not grants(["orders:*"], "orders:update_status")
    assert not grants(["*"], "anything.at_all")
    assert not grants(["orders.read"], "orders.update")
