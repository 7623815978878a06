-- Outliers: events of a room known here but not placed in its timeline, such as the state and
-- auth chain a join over federation brings. They have no stream position; they are read as
-- state and as auth events, never listed. An event later placed in the timeline keeps its
-- outlier row, and `events` is read first.
CREATE TABLE outliers (
    event_id         TEXT    NOT NULL PRIMARY KEY,
    room_id          TEXT    NOT NULL,
    depth            INTEGER NOT NULL,
    event_type       TEXT    NOT NULL,
    state_key        TEXT,
    sender           TEXT    NOT NULL,
    origin_server_ts INTEGER NOT NULL,
    -- Canonical JSON, as checked on receipt.
    pdu              TEXT    NOT NULL
) STRICT;
