"""erpgo-bot from a terminal: exit codes, configuration errors, --json, and the shell without a TTY."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import yaml

from tests.support import CONTRACT_ENV, run_bot, run_bot_async  # noqa: F401 (one way to run the CLI)


def targets_env(targets: dict) -> dict:
    return {name.upper(): str(value) for name, value in targets.items()}


@pytest.mark.parametrize(
    "name, value",
    [
        ("PORT", "eighty"),
        ("ERPGO_DATABASE_URL", "mysql://db/erp"),
        ("ERPGO_API_URL", "localhost:8080"),
        ("ERPGO_CHECK_TIMEOUT", "-1"),
        ("ERPGO_REDIS_URL", "http://x"),
    ],
)
def test_malformed_setting_is_one_line_naming_it_exit_2(name, value):
    result = run_bot("check", "health", env={name: value})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and name in lines[0] and "Traceback" not in result.stderr
    assert value not in lines[0] or name in ("PORT", "ERPGO_CHECK_TIMEOUT")  # URLs may hold secrets


def test_secret_in_malformed_dsn_is_not_echoed():
    result = run_bot("check", "health", env={"ERPGO_DATABASE_URL": "mysql://erpgo:hunter22@db/erp"})
    assert result.returncode == 2 and "hunter22" not in result.stderr


def test_serve_without_slack_credentials_exits_2():
    result = run_bot("serve", "--port", "0")
    assert result.returncode == 2 and "SLACK_BOT_TOKEN" in result.stderr


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"SLACK_BOT_TOKEN": "xoxb-1"}, "SLACK_SIGNING_SECRET"),
        (
            {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s", "CHATOPS_POLICY_FILE": "{policy}"},
            "not valid YAML",
        ),
        ({"SLACK_BOT_TOKEN": "xoxb-1"}, "SLACK_APP_TOKEN"),
    ],
)
def test_serve_refuses_a_configuration_error_at_once_before_asking_slack(env, named, tmp_path):
    """No 10 s of auth.test retries against a Slack that is not even configured properly first."""
    policy = tmp_path / "policy.yml"
    policy.write_text("verbs: [\n")
    env = {name: value.format(policy=policy) for name, value in env.items()}
    started = time.monotonic()
    result = run_bot("socket" if named == "SLACK_APP_TOKEN" else "serve", "--port", "0", env=env, timeout=30)
    assert time.monotonic() - started < 5, "the start waited for Slack before refusing its configuration"
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and named in lines[0]


def test_check_with_nothing_configured_exits_2_naming_what_to_set():
    """Run from cron with a misspelled setting, a check must not look green."""
    result = run_bot("check", "health", "--json")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip() == (
        "configuration error: nothing to check for health; "
        "set ERPGO_API_URL, ERPGO_DATABASE_URL, ERPGO_REDIS_URL, DOCKER_HOST"
    )


def test_mistyped_verb_or_sub_verb_is_suggested_with_its_own_help():
    result = run_bot("shell", stdin="/erpgo helth\n/erpgo db lcoks\n")
    assert "Unknown verb `helth`. Did you mean `health`?" in result.stdout
    assert "Unknown verb `db lcoks`. Did you mean `db locks`?" in result.stdout
    assert "`/erpgo db locks` — blocked and blocking sessions" in result.stdout
    assert "usage: `/erpgo <verb> [args]`" not in result.stdout  # not the whole list of verbs
    cli = run_bot("check", "db", "lcoks")
    assert cli.returncode == 2 and "did you mean: db locks" in cli.stderr


def test_shell_fire_without_alertmanager_says_what_to_set():
    result = run_bot("shell", stdin="fire HighErrorRate\n")
    assert result.returncode == 0
    assert "no Alertmanager to send alerts through: set ALERTMANAGER_URL" in result.stdout


async def test_check_timeline_says_it_belongs_in_slack_instead_of_a_traceback(fresh_database):
    result = await run_bot_async("check", "timeline", env={"BOT_DATABASE_URL": fresh_database("cli")})
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        "`timeline` shares its postmortem draft in a Slack thread: run `/erpgo timeline` in Slack"
        " — usage: timeline [group | thread link]"
    ]


def test_unknown_verb_exits_2():
    result = run_bot("check", "frobnicate")
    assert result.returncode == 2 and "unknown verb" in result.stderr


async def test_check_health_all_ok_exits_0_and_json_is_parseable(healthy_targets):
    env = targets_env(healthy_targets)
    text = await run_bot_async("check", "health", env=env)
    assert text.returncode == 0, text.stdout + text.stderr
    assert text.stdout.startswith("ERPGo health: OK")
    as_json = await run_bot_async("check", "health", "--json", env=env)
    doc = json.loads(as_json.stdout)
    assert doc["status"] == "ok"
    assert {f["component"] for f in doc["findings"]} >= {"ERPGo API", "PostgreSQL", "Redis", "Docker erpgo-api"}


async def test_check_health_with_a_fault_exits_1(healthy_targets, simulator):
    simulator.app["sim"].update({"status": "unhealthy"})
    result = await run_bot_async("check", "health", env=targets_env(healthy_targets))
    assert result.returncode == 1
    assert "[CRITICAL] ERPGo API" in result.stdout


async def test_shell_without_terminal_runs_health_once(healthy_targets):
    result = await run_bot_async("shell", env=targets_env(healthy_targets), stdin="")
    assert result.returncode == 0, result.stderr
    assert "Running health checks" in result.stdout
    assert "ERPGo health: OK" in result.stdout
    assert "PostgreSQL" in result.stdout and "thread reply" in result.stdout


async def test_shell_reads_commands_from_stdin(healthy_targets):
    result = await run_bot_async("shell", env=targets_env(healthy_targets), stdin="/erpgo help\n/erpgo nonsense\n")
    assert "usage: `/erpgo <verb> [args]`" in result.stdout
    assert "Unknown verb" in result.stdout
    assert "ERPGo health" not in result.stdout


def test_deployment_files_use_the_documented_names():
    compose = yaml.safe_load(Path("docker-compose.yml").read_text())
    env = compose["services"]["bot"]["environment"]
    for name in (
        "SLACK_BOT_TOKEN",
        "SLACK_SIGNING_SECRET",
        "ERPGO_API_URL",
        "ERPGO_DATABASE_URL",
        "ERPGO_REDIS_URL",
        "DOCKER_HOST",
        "ERPGO_COMPOSE_PROJECT",
        "BOT_DATABASE_URL",
        "PORT",
    ):
        assert name in env
    manifest = yaml.safe_load(Path("slack-manifest.yml").read_text())
    assert manifest["features"]["slash_commands"][0]["command"] == "/erpgo"
    assert set(manifest["oauth_config"]["scopes"]["bot"]) == {
        "chat:write",
        "commands",
        "files:write",
        "usergroups:read",
    }
    assert manifest["settings"]["interactivity"]["is_enabled"] is True
    assert manifest["settings"]["event_subscriptions"]["bot_events"] == ["app_home_opened"]
    assert manifest["features"]["app_home"]["home_tab_enabled"] is True
    dockerfile = Path("Dockerfile").read_text()
    assert "USER erpgo" in dockerfile and "HEALTHCHECK" in dockerfile and "/healthz" in dockerfile
