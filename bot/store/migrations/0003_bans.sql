-- Bans the bot put on the firewall: who asked, who approved, why, until when, on which backend.
--
-- The firewall itself is the truth about what is banned now (nftables expires elements by itself,
-- fail2ban applies its own bantime, anyone with root may remove a ban by hand); this table is what
-- the bot did, so `/erpgo bans` can tell a ban that expired or was removed outside the bot from one
-- that is active, across restarts and replicas. A row is open while removed_at IS NULL.

CREATE TABLE bans (
    id                  bigserial   PRIMARY KEY,
    address             cidr        NOT NULL,                 -- what was banned: 198.51.100.7/32, 2001:db8::/48
    backend             text        NOT NULL,                 -- nftables | fail2ban
    until               timestamptz,                          -- when the firewall lets it go; NULL: never
    reason              text        NOT NULL DEFAULT '',
    requested_by        text        NOT NULL,                 -- Slack user id, or "alertmanager"
    approved_by         text        NOT NULL,                 -- who approved the ban
    approval_id         bigint,                               -- the approval that ran it
    created_at          timestamptz NOT NULL DEFAULT now(),
    removed_at          timestamptz,                          -- when the bot ended the row
    removed_by          text,                                 -- who approved the unban (or "bot")
    removal_approval_id bigint,
    removal             text CHECK (removal IN ('unbanned', 'replaced', 'absent')),
    CHECK ((removed_at IS NULL) = (removal IS NULL))
);

CREATE INDEX bans_open ON bans (backend, address) WHERE removed_at IS NULL;
