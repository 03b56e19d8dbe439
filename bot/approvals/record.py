"""Each remediation's track record over the last 90 days, from the approvals and their
verifications: how often it ran, was verified or not fixed, how often the alert of its thread resolved
within ERPGO_VERIFY_WINDOW, and the median time to resolve (to the alert's resolution, else to the
verification). Shown on every new approval message and by `/erpgo actions`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

RECORD_DAYS = 90

RECORDS = f"""
SELECT a.action,
       count(*) FILTER (WHERE a.state IN ('succeeded', 'failed') AND coalesce(a.result, '') NOT LIKE 'nothing done:%')
           AS runs,
       count(*) FILTER (WHERE v.state = 'verified') AS verified,
       count(*) FILTER (WHERE v.state = 'not_fixed') AS not_fixed,
       count(*) FILTER (WHERE v.alert_resolved_at IS NOT NULL) AS alerts_resolved,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM coalesce(
           v.alert_resolved_at, CASE WHEN v.state = 'verified' THEN v.finished_at END) - a.decided_at)) AS median_s
FROM approvals a LEFT JOIN verifications v ON v.approval_id = a.id
WHERE a.decided_at > now() - interval '{RECORD_DAYS} days' AND a.action = ANY($1::text[])
GROUP BY a.action
"""


@dataclass(frozen=True)
class TrackRecord:
    action: str
    runs: int = 0
    verified: int = 0
    not_fixed: int = 0
    alerts_resolved: int = 0
    median_s: float | None = None

    def line(self) -> str:
        """'here: 12 runs, 11 verified, median 41 s to resolve' (the last 90 days)."""
        if not self.runs:
            return f"here: never run in the last {RECORD_DAYS} days"
        parts = [f"{self.runs} run{'s' if self.runs != 1 else ''}", f"{self.verified} verified"]
        if self.not_fixed:
            parts.append(f"{self.not_fixed} not fixed")
        if self.alerts_resolved:
            parts.append(f"{self.alerts_resolved} alert{'s' if self.alerts_resolved != 1 else ''} resolved in time")
        if self.median_s is not None:
            parts.append(f"median {duration(self.median_s)} to resolve")
        return "here: " + ", ".join(parts)


def duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


async def track_records(conn: Any, actions: list[str]) -> dict[str, TrackRecord]:
    """The record of each of `actions` (one that never ran has an empty one)."""
    rows = await conn.fetch(RECORDS, sorted(set(actions)))
    found = {
        row["action"]: TrackRecord(
            row["action"],
            row["runs"],
            row["verified"],
            row["not_fixed"],
            row["alerts_resolved"],
            float(row["median_s"]) if row["median_s"] is not None else None,
        )
        for row in rows
    }
    return {action: found.get(action, TrackRecord(action)) for action in actions}
