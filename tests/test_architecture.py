"""The seams the registry and the import graph keep: every proposal refers to a declared remediation
with the arguments it takes, triage precedence is declared, and the modules form no cycle."""

from __future__ import annotations

import ast
from pathlib import Path

import grimp
import pytest

from bot import app, cli
from bot.context import CheckContext
from bot.core.engine import run_checks
from bot.core.findings import Finding, Status
from bot.core.registry import SECTION, Registry, RegistryError, Runbook
from bot.settings import load_settings
from bot.targets import Targets
from tests import harness

ROOT = Path(__file__).resolve().parent.parent


def misspelled() -> Runbook:
    """A runbook whose check proposes `db.terminat`, which no runbook declares."""
    runbook = Runbook("misspelled")
    runbook.verb("lock probe", "a verb of the test's own")

    @runbook.check("lock probe", component="Probe", section="test", proposes=("db.terminat",))
    async def probe(_ctx: CheckContext) -> Finding:
        return Finding.ok("Probe", "fine")

    return runbook


def test_a_misspelled_proposal_stops_the_bot_at_start_naming_it(monkeypatch, capsys):
    monkeypatch.setattr(app, "RUNBOOKS", (*app.RUNBOOKS, misspelled()))
    with pytest.raises(Exception, match=r"db\.terminat"):
        app.build_registry()
    assert cli.main(["check", "health"]) == 2
    assert "proposes 'db.terminat', which no runbook declares" in capsys.readouterr().err


def test_every_check_proposes_only_declared_remediations():
    registry = harness.registry
    declared = set(registry.remediations)
    proposed = {action for check in registry.checks.values() for action in check.proposes}
    assert proposed <= declared
    assert {"db.terminate", "docker.restart", "security.ban_ip", "db.restore"} <= proposed


def test_a_proposal_with_arguments_its_remediation_does_not_take_is_refused():
    terminate = harness.registry.remediations["db.terminate"]
    with pytest.raises(RegistryError, match=r"db\.terminate"):
        terminate.propose(summary="Terminate", pid=1)  # backend_start, because, database missing
    with pytest.raises(RegistryError, match=r"db\.terminate"):
        terminate.propose(summary="Terminate", pid=1, backend_start="x", because="blocking", database="erp", port=5)
    made = terminate.propose(
        summary="Terminate 1", why="it blocks", pid=1, backend_start="x", because="blocking", database="erp"
    )
    assert (made.action, made.reason, made.args["pid"]) == ("db.terminate", "it blocks", 1)


def test_a_remediation_must_type_its_arguments():
    runbook = Runbook("loose")
    with pytest.raises(RegistryError, match="named and typed"):

        @runbook.remediation("loose.thing", "does a thing")
        async def thing(_ctx, **anything):  # type: ignore[no-untyped-def]
            return "done"


async def test_a_finding_proposing_what_its_check_did_not_declare_is_an_error_finding():
    runbook = Runbook("sneaky")
    runbook.verb("sneak", "a verb of the test's own")
    terminate = harness.registry.remediations["db.terminate"]

    @runbook.check("sneak", component="Sneak", section="test")
    async def sneak(_ctx: CheckContext) -> Finding:
        proposal = terminate.propose(summary="t", pid=1, backend_start="x", because="blocking", database="erp")
        return Finding.crit("Sneak", "proposes without saying so", proposals=[proposal])

    registry = Registry().install(runbook).resolve_triage()
    settings = load_settings()
    [finding] = await run_checks(registry.verbs["sneak"].checks, CheckContext(Targets(settings), settings))
    assert finding.status is Status.ERROR and "db.terminate" in finding.title and not finding.proposals


def test_triage_precedence_is_declared_not_the_order_of_installation():
    first, second = Runbook("a"), Runbook("b")
    for runbook in (first, second):
        runbook.verb(f"v{runbook.name}", "x")

        @runbook.check(f"v{runbook.name}", component="X", section="x")
        async def check(_ctx: CheckContext) -> Finding:
            return Finding.ok("X", "x")

        check.__name__ = f"check_{runbook.name}"
    first.checks[0][1].name, second.checks[0][1].name = "check_a", "check_b"
    first.triage_for("SameAlert", checks=["check_a"])
    second.triage_for("SameAlert", checks=["check_b"])
    with pytest.raises(RegistryError, match="SameAlert is triaged by two rules of precedence"):
        Registry().install(first, second).resolve_triage()
    second.triage[0].precedence = SECTION - 1
    for order in ((first, second), (second, first)):
        registry = Registry().install(*order).resolve_triage()
        assert [c.name for c in registry.checks_for_alert("SameAlert", {})] == ["check_b"]


def test_an_outage_alert_is_triaged_by_the_outage_runbook_first():
    checks = harness.registry.checks_for_alert("ServiceDown", {})
    assert [c.name for c in checks] == ["outage_or_service_down"]


def test_no_test_module_imports_another():
    for path in (ROOT / "tests").glob("test_*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                assert not node.module.startswith("tests.test_"), f"{path.name} imports {node.module}"


def test_no_import_cycle_between_the_projects_modules_type_only_imports_included():
    graph = grimp.build_graph("bot", "handlers", "runbooks", include_external_packages=False)
    cycles = []
    for importer in sorted(graph.modules):
        for imported in graph.find_modules_directly_imported_by(importer):
            if graph.find_shortest_chain(importer=imported, imported=importer):
                cycles.append(f"{importer} <-> {imported}")
    assert cycles == []


def test_every_migration_has_a_version_of_its_own():
    from bot.store.pool import migration_files

    versions = [m.version for m in migration_files()]
    assert len(versions) == len(set(versions)) and versions == sorted(versions)
    assert versions == list(range(1, len(versions) + 1)), "migrations are numbered without gaps"


def test_no_module_over_600_lines_and_no_function_over_60_in_the_code():
    too_long = []
    for root in ("bot", "handlers", "runbooks"):
        for path in sorted((ROOT / root).rglob("*.py")):
            source = path.read_text()
            if source.count("\n") > 600:
                too_long.append(f"{path.relative_to(ROOT)}: {source.count(chr(10))} lines")
            for node in ast.walk(ast.parse(source)):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    length = (node.end_lineno or node.lineno) - node.lineno + 1
                    if length > 60:
                        too_long.append(f"{path.relative_to(ROOT)}: {node.name} is {length} lines")
    assert too_long == []
