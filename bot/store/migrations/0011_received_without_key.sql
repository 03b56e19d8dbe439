-- alerts_received is the intake's append-only record, written only by the transaction that has just
-- locked (or created) the row of the alerts' group, and groups are never deleted: the foreign key
-- guarded nothing, while its check (a lookup and a row lock per row) cost a storm's COPY about a third.
ALTER TABLE alerts_received DROP CONSTRAINT alerts_received_group_id_fkey;
