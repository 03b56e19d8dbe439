"""Guide: "Authentication & Authorization" — login failures, JWT token issues, permission issues.

One runbook across the guide's three seams: accounts.py (`user <email>`, `users`), login.py
(`login-test`), probe.py (`login-test`'s refresh and probe-account login, the
`auth.send_password_reset` remediation), tokens.py (`jwt <token>`), permissions.py (roles and permissions of `user`, `role`,
the `auth.assign_role` remediation). The replies to `user`, `role` and `jwt` are seen by the asker
alone: they show someone's account or a pasted token's claims.
"""

from __future__ import annotations

from runbooks.auth import accounts, login, permissions, probe, tokens
from runbooks.auth.accounts import parse_user
from runbooks.auth.common import runbook
from runbooks.auth.login import PROBE_EMAIL
from runbooks.auth.tokens import parse_token

__all__ = ["PROBE_EMAIL", "accounts", "login", "parse_token", "parse_user", "permissions", "probe", "runbook", "tokens"]
