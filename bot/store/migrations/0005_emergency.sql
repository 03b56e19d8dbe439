-- Emergency procedures: approvals that need several people, the progress of long remediations
-- (a restore records every step), and the commands run, for the incident timeline.
--
-- An approval that needs N approvals stays pending while approved_by holds fewer than N distinct
-- people; the approval that completes the count is also the claim, in ONE statement:
--   UPDATE approvals SET approved_by = approved_by || $user,
--          state = CASE WHEN cardinality(approved_by) + 1 >= approvals_required THEN 'executing' ELSE state END …
--   WHERE id = $1 AND state = 'pending' AND expires_at > now() AND NOT ($user = ANY (approved_by))
-- Concurrent clicks serialise on the row, so of any number of them exactly one executes.

ALTER TABLE approvals
    ADD COLUMN approvals_required integer NOT NULL DEFAULT 1 CHECK (approvals_required BETWEEN 1 AND 5),
    ADD COLUMN approved_by        text[]  NOT NULL DEFAULT '{}',   -- who approved so far, in order
    ADD COLUMN progress           jsonb;                            -- the last state a running remediation recorded

-- Every /erpgo command whose report was posted: who ran what, where, and what it found.
CREATE TABLE commands_run (
    id          bigserial   PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    user_id     text        NOT NULL,
    channel     text        NOT NULL,
    verb        text        NOT NULL,
    args        text        NOT NULL DEFAULT '',     -- as typed after the verb (redacted)
    report_ts   text,                                -- the report's headline: its thread
    status      text        NOT NULL,                -- the worst status of its findings
    headline    text        NOT NULL DEFAULT '',     -- the worst findings, one line each (redacted)
    duration_ms integer     NOT NULL DEFAULT 0
);

CREATE INDEX commands_run_channel ON commands_run (channel, at);
CREATE INDEX commands_run_report ON commands_run (report_ts);

