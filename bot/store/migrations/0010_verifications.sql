-- Closing the loop on every action: whether it worked (verifications), whether the alert of its thread
-- resolved in time, and break glass (an action run without an approver, reviewed afterwards).

-- The check that proposed an approval and with what (verb arguments, alert scope, the target), so the
-- same check can be run again on the same target after the action.
ALTER TABLE approvals ADD COLUMN verify_scope jsonb;

-- One row per executed approval: claimed by one process under a lease (a verification whose lease
-- ran out — its process stopped — is finished by whichever replica takes it next).
CREATE TABLE verifications (
    approval_id       bigint      PRIMARY KEY REFERENCES approvals (id) ON DELETE CASCADE,
    action            text        NOT NULL,
    state             text        NOT NULL DEFAULT 'running'
                      CHECK (state IN ('running', 'verified', 'not_fixed', 'unverified')),
    before            text        NOT NULL DEFAULT '',    -- what the check saw when it proposed the action
    after             text        NOT NULL DEFAULT '',    -- what it sees after the action
    next_step         text        NOT NULL DEFAULT '',    -- not fixed: what to try next
    started_at        timestamptz NOT NULL DEFAULT now(),
    lease_until       timestamptz NOT NULL,
    finished_at       timestamptz,
    alert_resolved_at timestamptz,                        -- the alert of its thread resolved (within the window)
    alert_noted_at    timestamptz                         -- the thread was told how its alert went (once)
);

CREATE INDEX verifications_unfinished ON verifications (lease_until) WHERE state = 'running';

-- Break glass: the requester ran it after nobody approved in time; anyone who may approve could veto
-- during the countdown; an approver reviews it afterwards.
ALTER TABLE approvals ADD COLUMN break_glass_at timestamptz;        -- when the countdown started
ALTER TABLE approvals ADD COLUMN break_glass_runs_at timestamptz;   -- when it runs unless vetoed
ALTER TABLE approvals ADD COLUMN vetoed_by text;
ALTER TABLE approvals ADD COLUMN review_due_at timestamptz;         -- set once it ran under break glass
ALTER TABLE approvals ADD COLUMN reviewed_by text;
ALTER TABLE approvals ADD COLUMN reviewed_at timestamptz;

CREATE INDEX approvals_break_glass ON approvals (break_glass_runs_at) WHERE break_glass_at IS NOT NULL;

ALTER TABLE audit_log DROP CONSTRAINT audit_log_event_check;
ALTER TABLE audit_log ADD CONSTRAINT audit_log_event_check CHECK (event IN (
    'proposed', 'refused', 'approved', 'rejected', 'executed', 'expired', 'cancelled',
    'acknowledged', 'silenced', 'unsilenced', 'escalated', 'muted',
    'verified', 'break_glass', 'vetoed', 'reviewed'));
