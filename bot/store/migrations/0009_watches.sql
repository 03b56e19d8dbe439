-- Speaking before the pager does: scheduled watches, predictions from what the bot sampled, the
-- digest, and escalation of alert threads to whoever is on call.

-- One row per run slot that a replica claimed: `name` is a watch (its verb) or 'digest', `slot` the
-- slot's start. The primary key is the claim: of the replicas that try one slot, exactly one inserts.
CREATE TABLE schedule_slots (
    name        text        NOT NULL,
    slot        timestamptz NOT NULL,
    claimed_at  timestamptz NOT NULL DEFAULT now(),
    summary     jsonb,                                    -- what the run saw (the digest's figures)
    PRIMARY KEY (name, slot)
);

-- A watch's state between runs: its thread while it is open, and what the last run found.
CREATE TABLE watch_threads (
    watch           text        PRIMARY KEY,              -- the watched verb: tls, backups, disk…
    thread_key      text,                                 -- the open thread (NULL: the watch is OK)
    channel         text        NOT NULL DEFAULT '',
    status          text        NOT NULL DEFAULT 'ok',    -- worst status of the last run
    fingerprint     text        NOT NULL DEFAULT '',      -- what the last run found, so a repeat stays silent
    headline        text        NOT NULL DEFAULT '',      -- its worst finding, one line (redacted)
    opened_at       timestamptz,
    acked_by        text,
    acked_at        timestamptz,
    muted_by        text,
    muted_until     timestamptz,
    last_run_at     timestamptz,
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- Used bytes of each watched filesystem as the disk watch read them: the trend predictions fit.
CREATE TABLE disk_samples (
    path        text        NOT NULL,
    at          timestamptz NOT NULL DEFAULT now(),
    used        bigint      NOT NULL,
    total       bigint      NOT NULL,
    PRIMARY KEY (path, at)
);

-- Escalations of an alert thread: level 1 mentions who is on call, level 2 the secondary.
CREATE TABLE alert_escalations (
    thread_key      text        PRIMARY KEY,
    group_id        bigint      NOT NULL REFERENCES alert_groups (id) ON DELETE CASCADE,
    level           integer     NOT NULL CHECK (level BETWEEN 1 AND 2),
    escalated_by    text        NOT NULL,                 -- Slack user id, or "bot" (ERPGO_ESCALATE_AFTER)
    escalated_at    timestamptz NOT NULL DEFAULT now(),
    mentioned       text        NOT NULL DEFAULT ''       -- who the last escalation mentioned
);

ALTER TABLE audit_log DROP CONSTRAINT audit_log_event_check;
ALTER TABLE audit_log ADD CONSTRAINT audit_log_event_check CHECK (event IN (
    'proposed', 'refused', 'approved', 'rejected', 'executed', 'expired', 'cancelled',
    'acknowledged', 'silenced', 'unsilenced', 'escalated', 'muted'));
