-- Approval-gated remediation: one row per proposed destructive step, and an append-only audit log.
--
-- An approval moves pending -> executing -> succeeded | failed, or pending -> rejected | expired |
-- cancelled. The only way out of pending into executing is one atomic
--   UPDATE approvals SET state = 'executing' ... WHERE id = $1 AND state = 'pending' AND expires_at > now()
-- so a double click, a Slack retry or several bot replicas execute it at most once.

CREATE TABLE approvals (
    id          bigserial PRIMARY KEY,
    action      text        NOT NULL,                 -- registered remediation, e.g. db.terminate
    args        jsonb       NOT NULL DEFAULT '{}',    -- its arguments, exactly as it will receive them
    summary     text        NOT NULL,                 -- what will happen, to what
    reason      text        NOT NULL DEFAULT '',      -- why the check proposed it
    preview     text        NOT NULL DEFAULT '',      -- the exact statement or command that will run
    target      jsonb       NOT NULL DEFAULT '[]',    -- lines describing the target as it was seen (redacted)
    requester   text        NOT NULL,                 -- Slack user id, or "alertmanager"
    channel     text,                                 -- where the approval message is
    message_ts  text,                                 -- the approval message, for chat.update
    thread_ts   text,                                 -- the report thread it was posted in
    state       text        NOT NULL DEFAULT 'pending'
                CHECK (state IN ('pending', 'executing', 'succeeded', 'failed', 'rejected', 'expired', 'cancelled')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    decided_by  text,                                 -- who approved, rejected or cancelled it (NULL: expired)
    decided_at  timestamptz,                          -- when it left pending
    finished_at timestamptz,                          -- when the execution ended
    result      text,                                 -- one line: what was done, or why not
    CHECK (expires_at > created_at),
    CHECK ((state = 'pending') = (decided_at IS NULL))
);

CREATE INDEX approvals_open ON approvals (expires_at) WHERE state IN ('pending', 'executing');

CREATE TABLE audit_log (
    id          bigserial PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT clock_timestamp(),
    actor       text        NOT NULL,                 -- Slack user id, "alertmanager" or "bot"
    event       text        NOT NULL
                CHECK (event IN ('proposed', 'refused', 'approved', 'rejected', 'executed', 'expired', 'cancelled')),
    approval_id bigint,                               -- no foreign key: refusals may name unknown ids
    action      text,                                 -- remediation, or the verb for a refused command
    outcome     text        NOT NULL,                 -- pending, succeeded, failed, nothing done, the refusal reason…
    detail      text        NOT NULL DEFAULT '',
    channel     text
);

CREATE INDEX audit_log_approval ON audit_log (approval_id);

CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER audit_log_no_update_or_delete
    BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();

CREATE TRIGGER audit_log_no_truncate
    BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
