"""The frame's domain-free core: findings, the runbook registry, the check engine, redaction,
error classification and backoff, units, background tasks, logs and metrics."""
