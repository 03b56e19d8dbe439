"""Guide: "Review Security Settings" — the API container's rate limiting, lock-out and JWT settings, read
through the Docker Engine API. ERPGo reads RATE_LIMIT_ENABLED/RPS/BURST (but never starts the limiter they
configure: internal/interfaces/http/middleware/security_coordinator.go leaves it as a TODO), MAX_LOGIN_ATTEMPTS,
LOCKOUT_DURATION, JWT_EXPIRY and JWT_SECRET (pkg/config); unset ones take its defaults. The secret is
judged by its length only: its value stays in this process's memory and is never shown or logged."""

from __future__ import annotations

import asyncio
import re

from bot.context import CheckContext
from bot.core.findings import Finding, Status, worst
from bot.core.units import human_duration
from bot.targets.docker import ContainerNotFound

COMPONENT = "Security settings"
# ERPGo's defaults (pkg/config/config.go envDefault)
DEFAULTS = {
    "RATE_LIMIT_ENABLED": "true",
    "RATE_LIMIT_RPS": "100",
    "RATE_LIMIT_BURST": "200",
    "MAX_LOGIN_ATTEMPTS": "5",
    "LOCKOUT_DURATION": "15m",
    "JWT_EXPIRY": "24h",
}
VARIABLES = (*DEFAULTS, "JWT_SECRET")
MIN_SECRET_LENGTH = 32  # ERPGo's JWT secret validator wants 256 bits
MANY_ATTEMPTS = 10
SHORT_LOCKOUT_S = 5 * 60
LONG_TOKEN_S = 24 * 3600

_GO_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_GO_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}
_TRUE, _FALSE = ("1", "t", "T", "TRUE", "true", "True"), ("0", "f", "F", "FALSE", "false", "False")


def go_duration(text: str) -> float | None:
    """Seconds in a Go duration ("15m", "1h30m", "900s"); None when it is not one."""
    cleaned = text.strip()
    parts = _GO_DURATION_PART.findall(cleaned)
    if not parts or "".join(number + unit for number, unit in parts) != cleaned:
        return None
    return sum(float(number) * _GO_UNITS[unit] for number, unit in parts)


def _value(values: dict[str, str | None], name: str) -> tuple[str, str]:
    """(value, " (default)" or "") — the container's value, or ERPGo's default when unset."""
    given = values.get(name)
    return (given, "") if given else (DEFAULTS[name], " (default)")


def rate_limiting(values: dict[str, str | None]) -> tuple[Status, str, str]:
    enabled, default = _value(values, "RATE_LIMIT_ENABLED")
    rps, rps_default = _value(values, "RATE_LIMIT_RPS")
    burst, burst_default = _value(values, "RATE_LIMIT_BURST")
    if enabled in _FALSE:
        return (
            Status.WARN,
            "rate limiting OFF",
            (f"RATE_LIMIT_ENABLED={enabled}: nothing slows a brute force, and the API logs no rate-limited attempts"),
        )
    if enabled not in _TRUE:
        return Status.WARN, "rate limiting unclear", f"RATE_LIMIT_ENABLED={enabled[:20]!r} is not a boolean"
    return (
        Status.WARN,
        "rate limiting never started",
        (
            f"RATE_LIMIT_ENABLED={enabled}{default}, RATE_LIMIT_RPS={rps}{rps_default}, "
            f"RATE_LIMIT_BURST={burst}{burst_default} are read, but ERPGo never starts its limiter: its security "
            "coordinator leaves that as a TODO and the login handler is given none — no request is rate limited, "
            "only the lock-out slows a brute force; limit at the reverse proxy (e.g. nginx limit_req)"
        ),
    )


def lockout(values: dict[str, str | None]) -> tuple[Status, str, str]:
    attempts, default = _value(values, "MAX_LOGIN_ATTEMPTS")
    duration, duration_default = _value(values, "LOCKOUT_DURATION")
    seconds = go_duration(duration)
    status = Status.OK
    notes = []
    if not attempts.isdigit():
        status, count = Status.WARN, None
        notes.append(f"MAX_LOGIN_ATTEMPTS={attempts[:20]!r} is not a number")
    else:
        count = int(attempts)
        if count == 0 or count > MANY_ATTEMPTS:
            status = Status.WARN
            notes.append(f"{count} attempts before a lock-out is {'no limit' if count == 0 else 'generous'}")
    if seconds is None:
        status = Status.WARN
        notes.append(f"LOCKOUT_DURATION={duration[:20]!r} is not a duration (Go syntax: 15m, 1h)")
    elif seconds < SHORT_LOCKOUT_S:
        status = Status.WARN
        notes.append(f"a {human_duration(seconds)} lock-out barely slows an attacker")
    summary = f"{count if count is not None else '?'} attempts before a {duration} lock-out"
    detail = f"MAX_LOGIN_ATTEMPTS={attempts}{default}, LOCKOUT_DURATION={duration}{duration_default}"
    return status, summary, detail + (" — " + "; ".join(notes) if notes else "")


def token_expiry(values: dict[str, str | None]) -> tuple[Status, str, str]:
    expiry, default = _value(values, "JWT_EXPIRY")
    seconds = go_duration(expiry)
    if seconds is None:
        return Status.WARN, "JWT expiry unreadable", f"JWT_EXPIRY={expiry[:20]!r} is not a duration (Go syntax: 24h)"
    if seconds > LONG_TOKEN_S:
        return (
            Status.WARN,
            f"tokens valid {expiry}",
            (f"JWT_EXPIRY={expiry}{default}: a stolen token stays usable for {human_duration(seconds)}"),
        )
    return Status.OK, f"tokens valid {expiry}", f"JWT_EXPIRY={expiry}{default}"


def jwt_secret(secret: str | None) -> tuple[Status, str, str]:
    """Judged by its length alone; the value itself goes no further than this function."""
    if not secret:
        return (
            Status.CRIT,
            "JWT_SECRET NOT SET",
            (
                "JWT_SECRET is not set in the container: ERPGo falls back to its built-in default, "
                "which is in its public source — anyone can sign tokens"
            ),
        )
    length = len(secret)
    if length < MIN_SECRET_LENGTH:
        return (
            Status.CRIT,
            f"JWT_SECRET too short ({length} characters)",
            (
                f"JWT_SECRET has {length} characters: at least {MIN_SECRET_LENGTH} (256 bits) are needed; "
                "a short secret can be brute-forced from any token"
            ),
        )
    return Status.OK, f"JWT_SECRET set ({length} characters)", f"JWT_SECRET set, {length} characters (value not shown)"


async def security_findings(ctx: CheckContext, container: str) -> list[Finding]:
    docker = ctx.targets.docker
    try:
        read = await asyncio.gather(*(docker.read_env_value(container, name) for name in VARIABLES))
    except ContainerNotFound:
        return [Finding.warn(COMPONENT, f"container {container} not found", data={"container": container})]
    values = dict(zip(VARIABLES, read, strict=True))
    judged = [rate_limiting(values), lockout(values), token_expiry(values), jwt_secret(values.pop("JWT_SECRET"))]
    del read
    status = worst(status for status, _, _ in judged)
    return [
        Finding(
            status,
            COMPONENT,
            f"{container}: " + ", ".join(summary for _, summary, _ in judged),
            details=[detail for _, _, detail in judged] + ["TLS: `/erpgo tls` checks the certificates"],
            data={
                "container": container,
                "rate_limiting": judged[0][1],
                "jwt_secret_ok": judged[3][0] is Status.OK,
            },
        )
    ]
