"""Speaking before the pager does: watches (verbs' checks run on a schedule, one thread per watch that
turns warning or critical), predictions from what the bot sampled, and the digest. Each run slot is
claimed by exactly one replica in the bot's database (schedule.claim)."""
