"""Settings from the environment. The variable names are the external contract (see README)."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from bot.core.redact import register_secret
from bot.core.units import parse_duration


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
    erpgo_ban_default_duration: int = 3600  # s; the environment may say 30m, 4h, 7d
    erpgo_ban_max_duration: int = 7 * 86400

    # backups
    erpgo_backup_dir: str | None = None  # where dumps are (inside ERPGO_BACKUP_CONTAINER when that is set)
    erpgo_backup_container: str | None = None

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
    def _pg_dsn(cls, value):
        return _require_scheme(value, ("postgres", "postgresql"))

    @field_validator("erpgo_redis_url", mode="before")
    @classmethod
    def _redis_url(cls, value):
        return _require_scheme(value, ("redis", "rediss", "unix"))

    @field_validator("docker_host")
    @classmethod
    def _docker_host(cls, value: str | None) -> str | None:
        return _require_scheme(value, ("unix", "tcp", "http", "https"))

    @field_validator("alertmanager_url")
    @classmethod
    def _alertmanager_url(cls, value: str | None) -> str | None:
        value = _require_scheme(value, ("http", "https"))
        return value.rstrip("/") if value else None

    @field_validator("erpgo_disk_paths", "erpgo_tls_endpoints", "erpgo_ban_allowlist", mode="before")
    @classmethod
    def _comma_list(cls, value):
        if isinstance(value, str):
            value = [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("erpgo_ban_default_duration", "erpgo_ban_max_duration", "erpgo_verify_window", mode="before")
    @classmethod
    def _duration(cls, value):
        if isinstance(value, str) and not value.strip().isdigit():
            return parse_duration(value)
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
    def _containers(cls, value):
        if isinstance(value, str):
            value = [name.strip() for name in value.split(",") if name.strip()]
        if not value:
            raise ValueError("must name at least one container")
        return value

    @field_validator("erpgo_alert_routes", mode="before")
    @classmethod
    def _alert_routes(cls, value):
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

    def secret(self, name: str) -> str | None:
        value = getattr(self, name)
        return value.get_secret_value() if value is not None else None


def load_settings(**overrides) -> Settings:
    """Read the environment; raise ConfigError with one line naming the bad setting."""
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        error = exc.errors()[0]
        name = str(error["loc"][0]).upper() if error["loc"] else "settings"
        message = error["msg"].removeprefix("Value error, ")
        raise ConfigError(f"configuration error: {name} {message}") from None
    for _field_name, value in settings:
        if isinstance(value, SecretStr):
            register_secret(value.get_secret_value())
            register_secret(urlsplit(value.get_secret_value()).password)
    return settings
