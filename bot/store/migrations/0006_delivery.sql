-- One delivery path: everything the bot posts (reports, approval messages and their updates, thread
-- results, alert threads) is a row of slack_outbox; and a triage claim is a lease, not a flag.

-- A message of a thread other than its head can be named, so that it can be updated later: a 'post'
-- or 'reply' row with a message_key records where it landed in slack_threads under that key once
-- sent; an 'update' row with a message_key changes that message (without one, the thread's head).
ALTER TABLE slack_outbox ADD COLUMN message_key text;

-- Rows somebody is waiting for (a report, the answer to a click) go before alert traffic in the same
-- channel; within a thread the order is always by id.
ALTER TABLE slack_outbox ADD COLUMN priority smallint NOT NULL DEFAULT 0;

-- The outbox thread an approval's messages go to (its report's or alert's thread).
ALTER TABLE approvals ADD COLUMN thread_key text;

-- A running triage holds its claim until triage_lease_until and renews it while it works; a claim
-- whose lease ran out (its process died) may be taken by any replica.
ALTER TABLE alert_groups ADD COLUMN triage_lease_until timestamptz;
