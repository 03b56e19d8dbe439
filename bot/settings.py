"""Settings from the environment. The variable names are the external contract (see README)."""

from __future__ import annotations

import ipaddress
import re
import shlex
from typing import Annotated, Any, Self
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from bot.core.redact import register_secret
from bot.core.units import parse_duration

# Docker's own rule for a container name: a path such as "../../info" would be a different API call
CONTAINER_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}")


class ConfigError(Exception):
    """A missing or malformed setting; the message names it and never shows its value."""


def _require_scheme(value: str | None, schemes: tuple[str, ...]) -> str | None:
    if value in (None, ""):
        return None
    parts = urlsplit(value)
    if parts.scheme not in schemes:
        raise ValueError(f"must start with one of {', '.join(s + '://' for s in schemes)}")
    if parts.scheme not in ("unix",) and not parts.hostname and "host=" not in (parts.query or ""):
        raise ValueError("has no host")
    return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    slack_bot_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    slack_api_url: str = "https://slack.com/api/"

    erpgo_api_url: str | None = None
    erpgo_probe_email: str | None = None  # an ERPGo account `login-test` logs in as (a real login)
    erpgo_probe_password: SecretStr | None = None  # its password: never posted or logged
    erpgo_database_url: SecretStr | None = None
    erpgo_redis_url: SecretStr | None = None
    docker_host: str | None = None
    erpgo_containers: Annotated[list[str], NoDecode] = ["erpgo-api", "erpgo-postgres", "erpgo-redis"]
    # when set, the watched containers are every container of this compose project (its labels), and
    # the API, database and cache are its services api, postgres and redis
    erpgo_compose_project: str | None = None
    erpgo_check_timeout: float = Field(5.0, gt=0, le=120)

    bot_database_url: SecretStr | None = None
    port: int = Field(3000, ge=1, le=65535)
    log_level: str = "info"

    chatops_policy_file: str | None = None
    alert_webhook_token: SecretStr | None = None
    erpgo_alert_channel: str | None = None
    # alert routing rules, first match wins: "severity=critical:#oncall-critical,team=db:#dba"
    erpgo_alert_routes: Annotated[list[tuple[str, str, str]], NoDecode] = []
    erpgo_alert_refire_window: float = Field(86400.0, ge=0)  # s: a group firing again within it reuses its thread
    # s: an action in an alert thread is credited when the group resolves within it; the environment may say 15m
    erpgo_verify_window: int = Field(900, ge=1, le=7 * 86400)
    erpgo_slack_channel_interval: float = Field(1.0, ge=0, le=60)  # s between two messages in one channel
    erpgo_slack_max_backoff: float = Field(30.0, gt=0, le=3600)  # s: longest wait between retries while Slack fails
    erpgo_shutdown_grace: float = Field(20.0, ge=0, le=600)  # s: running work may finish after SIGTERM
    erpgo_slack_channel_burst: int = Field(
        15, ge=1, le=100
    )  # messages a channel may get at once, then one per interval
    erpgo_usergroup_ttl: float = Field(300.0, ge=0, le=86400)  # s: how long a Slack user group's members are trusted

    # Alertmanager's API (silences from alert threads)
    alertmanager_url: str | None = None
    alertmanager_username: str | None = None
    alertmanager_password: SecretStr | None = None
    alertmanager_bearer_token: SecretStr | None = None

    # Prometheus's API (the alert's graph in its thread, `graph`, trends in the reports)
    prometheus_url: str | None = None
    prometheus_username: str | None = None
    prometheus_password: SecretStr | None = None
    prometheus_bearer_token: SecretStr | None = None
    erpgo_chart_lookback: int = Field(3600, gt=0, le=7 * 86400)  # s before a group fired that its chart shows

    # infrastructure runbooks
    erpgo_disk_paths: Annotated[list[str], NoDecode] = []  # paths whose filesystem usage `disk` judges
    erpgo_tls_endpoints: Annotated[list[str], NoDecode] = []  # host:port checked by `tls` with no argument
    erpgo_tls_ca_file: str | None = None  # CA bundle to verify against instead of the system store

    # security: where attackers show up, and the firewall bans go to
    erpgo_access_log_container: str | None = None  # a reverse proxy's container (nginx/combined log format)
    erpgo_firewall: str = "none"  # none | nftables | fail2ban
    erpgo_firewall_command: str = "nft"  # the command that runs nft, split into words
    erpgo_fail2ban_jail: str | None = None
    erpgo_fail2ban_socket: str | None = None
    erpgo_ban_allowlist: Annotated[list[str], NoDecode] = []  # CIDRs never banned
    # s; the environment may say 30m, 4h, 7d. Never 0: nft keeps an element with a 0 s timeout for ever
    erpgo_ban_default_duration: int = Field(3600, ge=1)
    erpgo_ban_max_duration: int = Field(7 * 86400, ge=1)

    # backups
    erpgo_backup_dir: str | None = None  # where dumps are (inside ERPGO_BACKUP_CONTAINER when that is set)
    erpgo_backup_container: str | None = None

    # watches, the digest, on call and escalation (bot/watch, bot/oncall.py)
    erpgo_watch: str | None = None  # verb:interval,… ; None: the default when ERPGO_ALERT_CHANNEL is set; "off"
    erpgo_watch_horizon: float = Field(7 * 86400.0, gt=0)  # s: a prediction inside it is a warning
    erpgo_digest_cron: str = "0 8 * * 1-5"  # "off": no scheduled digest
    erpgo_digest_tz: str = "UTC"
    erpgo_digest_channel: str | None = None  # default: ERPGO_ALERT_CHANNEL
    erpgo_oncall: str | None = (
        None  # S… (a Slack user group), or "rotation" (the policy's oncall); default: the policy's
    )
    erpgo_escalate_after: float | None = 600.0  # s; None ("off"): no escalation by itself
    erpgo_alert_updates: str = "thread"  # thread | header

    @field_validator("slack_api_url")
    @classmethod
    def _api_url(cls, value: str) -> str:
        _require_scheme(value, ("http", "https"))
        return value if value.endswith("/") else value + "/"

    @field_validator("erpgo_api_url")
    @classmethod
    def _erpgo_api(cls, value: str | None) -> str | None:
        value = _require_scheme(value, ("http", "https"))
        return value.rstrip("/") if value else None

    @field_validator("erpgo_database_url", "bot_database_url", mode="before")
    @classmethod
    def _pg_dsn(cls, value: Any) -> Any:
        return _require_scheme(value, ("postgres", "postgresql"))

    @field_validator("erpgo_redis_url", mode="before")
    @classmethod
    def _redis_url(cls, value: Any) -> Any:
        return _require_scheme(value, ("redis", "rediss", "unix"))

    @field_validator("docker_host")
    @classmethod
    def _docker_host(cls, value: str | None) -> str | None:
        return _require_scheme(value, ("unix", "tcp", "http", "https"))

    @field_validator("alertmanager_url", "prometheus_url")
    @classmethod
    def _api_base_url(cls, value: str | None) -> str | None:
        value = _require_scheme(value, ("http", "https"))
        return value.rstrip("/") if value else None

    @field_validator("erpgo_disk_paths", "erpgo_tls_endpoints", "erpgo_ban_allowlist", mode="before")
    @classmethod
    def _comma_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator(
        "erpgo_ban_default_duration",
        "erpgo_ban_max_duration",
        "erpgo_chart_lookback",
        "erpgo_verify_window",
        mode="before",
    )
    @classmethod
    def _duration(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip().isdigit():
            try:
                return parse_duration(value)
            except ValueError:
                raise ValueError("is not a duration such as 3600, 30m, 4h or 7d") from None  # the value unshown
        return value

    @model_validator(mode="after")
    def _ban_default_within_max(self) -> Self:
        if self.erpgo_ban_default_duration > self.erpgo_ban_max_duration:
            raise ValueError("ERPGO_BAN_DEFAULT_DURATION is longer than ERPGO_BAN_MAX_DURATION")
        return self

    @field_validator("erpgo_ban_allowlist")
    @classmethod
    def _allowlist(cls, value: list[str]) -> list[str]:
        for number, entry in enumerate(value, start=1):
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(f"entry {number} is not an IP address or CIDR") from None
        return value

    @field_validator("erpgo_tls_endpoints")
    @classmethod
    def _tls_endpoints(cls, value: list[str]) -> list[str]:
        # imported here: bot.targets' package imports this module, so a top-level import would be circular
        from bot.targets.tls import parse_endpoint

        for number, entry in enumerate(value, start=1):
            try:
                parse_endpoint(entry)
            except ValueError:
                raise ValueError(f"entry {number} is not host:port (an IPv6 address in brackets)") from None
        return value

    @field_validator("erpgo_firewall_command")
    @classmethod
    def _firewall_command(cls, value: str) -> str:
        try:
            words = shlex.split(value)
        except ValueError:
            raise ValueError("is not a command line (unbalanced quotes)") from None
        if not words:
            raise ValueError("must name the command that runs nft")
        return value

    @field_validator("erpgo_watch_horizon", mode="before")
    @classmethod
    def _horizon(cls, value: Any) -> Any:
        return parse_duration(value) if isinstance(value, str) else value

    @field_validator("erpgo_escalate_after", mode="before")
    @classmethod
    def _escalate_after(cls, value: Any) -> Any:
        if isinstance(value, str):
            return None if value.strip().lower() == "off" else parse_duration(value)
        return value

    @field_validator("erpgo_watch")
    @classmethod
    def _watch(cls, value: str | None) -> str | None:
        from bot.watch.schedule import parse_watches

        if value is not None:
            parse_watches(value)  # a ValueError names the bad entry
        return value

    @field_validator("erpgo_digest_cron")
    @classmethod
    def _digest_cron(cls, value: str) -> str:
        from bot.watch.schedule import check_cron

        return check_cron(value)

    @field_validator("erpgo_digest_tz")
    @classmethod
    def _digest_tz(cls, value: str) -> str:
        from bot.watch.schedule import zone

        zone(value)
        return value

    @field_validator("erpgo_oncall")
    @classmethod
    def _oncall(cls, value: str | None) -> str | None:
        from bot.oncall import GROUP, ROTATION

        if value in (None, "") or value == ROTATION or GROUP.match(value):
            return value or None
        raise ValueError(f"must be a Slack user group id (S…) or {ROTATION}")

    @field_validator("erpgo_alert_updates")
    @classmethod
    def _alert_updates(cls, value: str) -> str:
        value = value.strip().lower()
        if value not in ("thread", "header"):
            raise ValueError("must be thread or header")
        return value

    @field_validator("erpgo_firewall")
    @classmethod
    def _firewall(cls, value: str) -> str:
        value = value.strip().lower()
        if value not in ("none", "nftables", "fail2ban"):
            raise ValueError("must be none, nftables or fail2ban")
        return value

    @field_validator("erpgo_containers", mode="before")
    @classmethod
    def _containers(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [name.strip() for name in value.split(",") if name.strip()]
        if not value:
            raise ValueError("must name at least one container")
        for number, name in enumerate(value, start=1):
            if not isinstance(name, str) or not CONTAINER_NAME.fullmatch(name):
                raise ValueError(f"entry {number} is not a container name (letters, digits, '_', '.', '-')")
        return value

    @field_validator("erpgo_alert_routes", mode="before")
    @classmethod
    def _alert_routes(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        routes = []
        for number, rule in enumerate((part.strip() for part in value.split(",")), start=1):
            if not rule:
                continue
            matcher, sep, channel = rule.rpartition(":")
            label, eq, wanted = matcher.partition("=")
            if not sep or not eq or not label.strip() or not channel.strip():
                # the value is not quoted: a mistyped setting may hold a secret pasted in the wrong place
                raise ValueError(f"rule {number} is not label=value:channel")
            routes.append((label.strip(), wanted.strip(), channel.strip()))
        return routes

    @field_validator("log_level")
    @classmethod
    def _log_level(cls, value: str) -> str:
        value = value.lower()
        if value not in ("debug", "info", "warning", "error"):
            raise ValueError("must be debug, info, warning or error")
        return value

    def watches(self) -> list[tuple[str, int]]:
        """(verb, interval in seconds) of ERPGO_WATCH; its default once ERPGO_ALERT_CHANNEL is set."""
        from bot.watch.schedule import DEFAULT_WATCHES, parse_watches

        if self.erpgo_watch is None:
            return parse_watches(DEFAULT_WATCHES) if self.erpgo_alert_channel else []
        return parse_watches(self.erpgo_watch)

    def secret(self, name: str) -> str | None:
        value = getattr(self, name)
        return value.get_secret_value() if value is not None else None


def load_settings(**overrides: Any) -> Settings:
    """Read the environment; raise ConfigError with one line naming the bad setting."""
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        error = exc.errors()[0]
        message = error["msg"].removeprefix("Value error, ")
        if not error["loc"]:  # a rule across settings: the message names them
            raise ConfigError(f"configuration error: {message}") from None
        raise ConfigError(f"configuration error: {str(error['loc'][0]).upper()} {message}") from None
    for _field_name, value in settings:
        if isinstance(value, SecretStr):
            register_secret(value.get_secret_value())
            register_secret(urlsplit(value.get_secret_value()).password)
    return settings
