-- Files shared in a thread whose content is bytes (a chart's PNG). They are kept beside their outbox
-- row, never turned into text nor redacted as text would be: what a chart shows was redacted before
-- it was drawn. They go when their row goes.
CREATE TABLE slack_outbox_files (
    outbox_id   bigint  PRIMARY KEY REFERENCES slack_outbox (id) ON DELETE CASCADE,
    content     bytea   NOT NULL
);
