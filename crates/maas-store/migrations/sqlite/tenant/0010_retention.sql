-- Pruning what only grows (core's `maintenance`). Retention is given in time, positions are
-- not times: each pruning pass records the position the tenant's stream had reached, and "older
-- than N days" becomes "at or below the newest position marked N days ago or earlier".
CREATE TABLE stream_marks (
    stream INTEGER NOT NULL PRIMARY KEY,
    ts     INTEGER NOT NULL
) STRICT;

-- Device list changes at or below this position may have been pruned: a sync token older than
-- it can't be answered from `device_list_changes` alone.
ALTER TABLE counters ADD COLUMN device_lists_pruned_through INTEGER NOT NULL DEFAULT 0;
