-- Alert intake and the durable Slack outbox.
--
-- Alertmanager notifications are recorded here before the webhook answers 2xx: every alert received
-- (alerts_received, append-only), the current state of each alert of a group (alerts), and the
-- group itself with the Slack thread it is discussed in (alert_groups.thread_key -> slack_threads).
-- Everything the bot will post about alerts is a row of slack_outbox, delivered in order per thread
-- by bot/outbox.py, so a Slack outage or rate limit delays messages but never loses them.

CREATE TABLE alert_groups (
    id              bigserial   PRIMARY KEY,
    group_key       text        NOT NULL UNIQUE,          -- Alertmanager's groupKey
    receiver        text        NOT NULL DEFAULT '',
    channel         text        NOT NULL,                 -- ERPGO_ALERT_CHANNEL or the matching route
    thread_key      text        NOT NULL UNIQUE,          -- the outbox thread of the current episode
    status          text        NOT NULL CHECK (status IN ('firing', 'resolved')),
    group_labels    jsonb       NOT NULL DEFAULT '{}',
    common_labels   jsonb       NOT NULL DEFAULT '{}',
    annotations     jsonb       NOT NULL DEFAULT '{}',    -- commonAnnotations, else the first alert's
    external_url    text        NOT NULL DEFAULT '',
    fired_at        timestamptz NOT NULL,                 -- start of the current episode
    resolved_at     timestamptz,                          -- set while resolved
    notifications   bigint      NOT NULL DEFAULT 0,       -- webhook notifications received for it
    alerts_total    integer     NOT NULL DEFAULT 0,       -- its alerts (rows of alerts), kept by the intake
    alerts_firing   integer     NOT NULL DEFAULT 0,       -- of which firing
    triage_state    text        NOT NULL DEFAULT 'pending'
                    CHECK (triage_state IN ('pending', 'running', 'done')),
    triage_started_at timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX alert_groups_open ON alert_groups (fired_at) WHERE status = 'firing';
CREATE INDEX alert_groups_triage ON alert_groups (updated_at) WHERE triage_state <> 'done';

-- The current state of each alert (by fingerprint) of a group's current episode.
CREATE TABLE alerts (
    group_id        bigint      NOT NULL REFERENCES alert_groups (id) ON DELETE CASCADE,
    fingerprint     text        NOT NULL,
    status          text        NOT NULL CHECK (status IN ('firing', 'resolved')),
    labels          jsonb       NOT NULL,
    annotations     jsonb       NOT NULL,
    starts_at       timestamptz,
    ends_at         timestamptz,                          -- NULL: Alertmanager's zero time
    generator_url   text        NOT NULL DEFAULT '',
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (group_id, fingerprint)
);

-- Every alert of every notification accepted, as received.
CREATE TABLE alerts_received (
    id              bigserial   PRIMARY KEY,
    received_at     timestamptz NOT NULL DEFAULT now(),
    group_id        bigint      NOT NULL REFERENCES alert_groups (id) ON DELETE CASCADE,
    fingerprint     text        NOT NULL,
    status          text        NOT NULL,
    labels          jsonb       NOT NULL,
    annotations     jsonb       NOT NULL,
    starts_at       timestamptz,
    ends_at         timestamptz,
    generator_url   text        NOT NULL DEFAULT ''
);

CREATE INDEX alerts_received_group ON alerts_received (group_id, id);

-- Slack messages waiting to be delivered, and those delivered.
-- Rows of one thread_key are delivered strictly in id order; the first row of a thread ('post')
-- is its top-level message, whose ts later rows ('reply', 'update') need.
CREATE TABLE slack_outbox (
    id              bigserial   PRIMARY KEY,
    thread_key      text        NOT NULL,
    channel         text        NOT NULL,
    op              text        NOT NULL CHECK (op IN ('post', 'reply', 'update')),
    kind            text        NOT NULL DEFAULT '',      -- what it says (header, triage, membership…)
    message         jsonb       NOT NULL,                 -- {"text", "blocks"}
    data            jsonb,                                -- what it was rendered from, for merging
    state           text        NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'sent', 'superseded', 'failed')),
    attempts        integer     NOT NULL DEFAULT 0,
    not_before      timestamptz NOT NULL DEFAULT now(),
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    done_at         timestamptz,
    ts              text                                  -- Slack's ts of the message once sent
);

CREATE INDEX slack_outbox_pending ON slack_outbox (thread_key, id) WHERE state = 'pending';
CREATE INDEX slack_outbox_done ON slack_outbox (done_at) WHERE state <> 'pending';

-- Where each thread's top-level message is (channel id as Slack answered, ts).
CREATE TABLE slack_threads (
    thread_key      text        PRIMARY KEY,
    channel         text        NOT NULL,
    ts              text        NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);

-- Per-channel pacing shared by every replica: nothing is sent to a channel before next_at.
CREATE TABLE slack_channels (
    channel         text        PRIMARY KEY,
    next_at         timestamptz NOT NULL DEFAULT '-infinity',
    last_error      text
);
