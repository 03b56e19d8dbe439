-- What people do from Slack: acknowledge and silence alert threads, the commands they ran (for
-- their App Home), and what the outbox needs to pace a channel by a token bucket and to upload files.

-- One row per alert thread someone acted on. Keyed by the thread, not the group: a group that opens
-- a new thread (fired again after ERPGO_ALERT_REFIRE_WINDOW) starts unacknowledged and unsilenced.
CREATE TABLE alert_actions (
    thread_key      text        PRIMARY KEY,
    group_id        bigint      NOT NULL REFERENCES alert_groups (id) ON DELETE CASCADE,
    acked_by        text,                                 -- Slack user id of who said "I'm on it"
    acked_at        timestamptz,
    silence_id      text,                                 -- Alertmanager's silence id, while one is shown
    silenced_by     text,
    silenced_at     timestamptz,
    silenced_until  timestamptz,
    silence_comment text        NOT NULL DEFAULT '',
    silence_ended_at timestamptz,                         -- set when it was lifted (Unsilence, or the group fired again)
    silence_ended_by text,                                -- who lifted it ("alertmanager": the group fired again)
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CHECK ((acked_by IS NULL) = (acked_at IS NULL))
);

CREATE INDEX alert_actions_group ON alert_actions (group_id);

-- The audit log also records acknowledgements and silences.
ALTER TABLE audit_log DROP CONSTRAINT audit_log_event_check;
ALTER TABLE audit_log ADD CONSTRAINT audit_log_event_check CHECK (event IN (
    'proposed', 'refused', 'approved', 'rejected', 'executed', 'expired', 'cancelled',
    'acknowledged', 'silenced', 'unsilenced'));

-- The commands people ran, newest first in their App Home. Kept short: it is a convenience.
CREATE TABLE command_log (
    id              bigserial   PRIMARY KEY,
    at              timestamptz NOT NULL DEFAULT now(),
    user_id         text        NOT NULL,
    channel         text        NOT NULL DEFAULT '',
    verb            text        NOT NULL,
    text            text        NOT NULL DEFAULT ''       -- the arguments as typed (redacted, clipped)
);

CREATE INDEX command_log_user ON command_log (user_id, id DESC);

-- Files as outbox rows: op 'upload' shares a file in the thread (files.getUploadURLExternal, the
-- upload, files.completeUploadExternal). `failures` counts the failures that back off (5xx, timeouts,
-- refused connections) apart from `attempts`, so a 429's Retry-After never lengthens a later backoff.
ALTER TABLE slack_outbox DROP CONSTRAINT slack_outbox_op_check;
ALTER TABLE slack_outbox ADD CONSTRAINT slack_outbox_op_check CHECK (op IN ('post', 'reply', 'update', 'upload'));
ALTER TABLE slack_outbox ADD COLUMN failures integer NOT NULL DEFAULT 0;

-- A token bucket per channel shared by every replica: `tokens` as of `refilled_at` (NULL: full),
-- refilled at one token per ERPGO_SLACK_CHANNEL_INTERVAL up to ERPGO_SLACK_CHANNEL_BURST.
-- next_at stays the moment the channel may be written to again (bucket empty, Retry-After, backoff).
ALTER TABLE slack_channels ADD COLUMN tokens double precision NOT NULL DEFAULT 0;
ALTER TABLE slack_channels ADD COLUMN refilled_at timestamptz;
