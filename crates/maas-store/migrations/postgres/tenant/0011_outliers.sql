-- Outliers: events of a room known here but not placed in its timeline, such as the state and
-- auth chain a join over federation brings. They have no stream position; they are read as
-- state and as auth events, never listed. An event later placed in the timeline keeps its
-- outlier row, and `events` is read first.
CREATE TABLE outliers (
    event_id         TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    room_id          TEXT COLLATE "C" NOT NULL,
    depth            BIGINT NOT NULL,
    event_type       TEXT COLLATE "C" NOT NULL,
    state_key        TEXT COLLATE "C",
    sender           TEXT COLLATE "C" NOT NULL,
    origin_server_ts BIGINT NOT NULL,
    -- Canonical JSON, as checked on receipt.
    pdu              TEXT   NOT NULL
);
