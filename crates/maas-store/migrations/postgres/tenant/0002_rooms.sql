-- Rooms: the event DAG as full PDUs, compact state (snapshots plus deltas), current
-- memberships, aliases and the directory, and per-user room data (account data, receipts,
-- filters). Every change sync must see carries a position in the tenant's single stream.
-- Same tables and columns as the SQLite schema, so exports move between the backends; ids
-- sort with COLLATE "C" (byte order, as on SQLite) whatever the database's locale.

-- One row of counters that must survive restarts. `stream_reserved` only ever grows, so
-- positions handed out after a restart can't collide with stored ones.
CREATE TABLE counters (
    id               INTEGER NOT NULL PRIMARY KEY CHECK (id = 0),
    stream_reserved  BIGINT  NOT NULL,
    last_state_group BIGINT  NOT NULL
);

INSERT INTO counters (id, stream_reserved, last_state_group) VALUES (0, 0, 0);

CREATE TABLE rooms (
    room_id      TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    room_version TEXT    NOT NULL,
    creator      TEXT COLLATE "C" NOT NULL,
    created_ts   BIGINT  NOT NULL,
    published    BOOLEAN NOT NULL DEFAULT FALSE,
    -- The resolved state after the forward extremities. No foreign key: a room may be
    -- recorded before the group of its first event is written.
    state_group  BIGINT  NOT NULL
);

-- The public directory pages through published rooms by room id.
CREATE INDEX rooms_published ON rooms (room_id) WHERE published;

-- A state group is a full snapshot (`prev_group` NULL) or a delta against `prev_group`.
CREATE TABLE state_groups (
    id         BIGINT NOT NULL PRIMARY KEY,
    room_id    TEXT COLLATE "C" NOT NULL,
    prev_group BIGINT REFERENCES state_groups (id),
    chain_len  BIGINT NOT NULL CHECK (chain_len >= 0)
);

CREATE INDEX state_groups_by_prev ON state_groups (prev_group) WHERE prev_group IS NOT NULL;

-- Entries of a group: all of them for a snapshot, only the added or replaced ones for a delta.
CREATE TABLE state_group_entries (
    group_id   BIGINT NOT NULL REFERENCES state_groups (id) ON DELETE CASCADE,
    event_type TEXT COLLATE "C" NOT NULL,
    state_key  TEXT COLLATE "C" NOT NULL,
    event_id   TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (group_id, event_type, state_key)
);

-- One row per event, keyed by its stream position. The constraints are named because
-- `persist_event` tells by name which of them a refused event collided with.
CREATE TABLE events (
    stream           BIGINT NOT NULL CONSTRAINT events_stream PRIMARY KEY,
    event_id         TEXT COLLATE "C" NOT NULL CONSTRAINT events_event_id UNIQUE,
    room_id          TEXT COLLATE "C" NOT NULL,
    depth            BIGINT NOT NULL,
    event_type       TEXT COLLATE "C" NOT NULL,
    state_key        TEXT COLLATE "C",
    sender           TEXT COLLATE "C" NOT NULL,
    origin_server_ts BIGINT NOT NULL,
    -- Canonical JSON; the redacted form once redacted. TEXT rather than JSONB: the bytes are
    -- what was hashed and signed.
    pdu              TEXT   NOT NULL,
    state_before     BIGINT NOT NULL,
    state_after      BIGINT NOT NULL,
    redacted_by      TEXT COLLATE "C",
    -- The client transaction that sent the event: all three or none.
    txn_localpart    TEXT COLLATE "C",
    txn_device_id    TEXT COLLATE "C",
    txn_id           TEXT COLLATE "C",
    -- `content.m.relates_to`: both or none.
    rel_type         TEXT COLLATE "C",
    parent_event_id  TEXT COLLATE "C",
    CHECK ((txn_localpart IS NULL) = (txn_device_id IS NULL)
           AND (txn_device_id IS NULL) = (txn_id IS NULL)),
    CHECK ((rel_type IS NULL) = (parent_event_id IS NULL))
);

CREATE INDEX events_by_room ON events (room_id, stream);
-- Ends in the stream (SQLite gets it for free as the rowid), so events with the same
-- timestamp come in stream order without a sort.
CREATE INDEX events_by_room_ts ON events (room_id, origin_server_ts, stream);
-- Idempotent sends: one event per client transaction.
CREATE UNIQUE INDEX events_by_txn ON events (txn_localpart, txn_device_id, txn_id)
    WHERE txn_id IS NOT NULL;
CREATE INDEX events_by_relation ON events (parent_event_id, rel_type, stream)
    WHERE parent_event_id IS NOT NULL;
-- Thread listings group a room's thread replies by root without reading its other events;
-- the literal 'm.thread' lets queries that name it use this index.
CREATE INDEX events_thread_replies ON events (room_id, parent_event_id, stream)
    WHERE rel_type = 'm.thread';

CREATE TABLE forward_extremities (
    room_id  TEXT COLLATE "C" NOT NULL,
    event_id TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (room_id, event_id)
);

-- Current membership per (room, user); rooms may be remote-only (an invite over federation),
-- so there is no foreign key to `rooms`.
CREATE TABLE room_memberships (
    room_id        TEXT COLLATE "C" NOT NULL,
    user_id        TEXT COLLATE "C" NOT NULL,
    membership     TEXT COLLATE "C" NOT NULL
        CHECK (membership IN ('join', 'invite', 'leave', 'ban', 'knock')),
    event_id       TEXT COLLATE "C" NOT NULL,
    stream         BIGINT NOT NULL,
    sender         TEXT COLLATE "C" NOT NULL,
    -- JSON array shown with an invite or knock.
    stripped_state TEXT,
    PRIMARY KEY (room_id, user_id)
);

-- "Rooms of a user" and "what changed for a user since" without reading other users' rows.
CREATE INDEX room_memberships_by_user ON room_memberships (user_id, stream);

-- Rooms a user forgot; the row goes when their membership changes again.
CREATE TABLE forgotten_rooms (
    room_id TEXT COLLATE "C" NOT NULL,
    user_id TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (room_id, user_id)
);

CREATE TABLE room_aliases (
    alias   TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    room_id TEXT COLLATE "C" NOT NULL,
    creator TEXT COLLATE "C" NOT NULL
);

CREATE INDEX room_aliases_by_room ON room_aliases (room_id);

-- `room_id` is '' for global account data: NULLs would be distinct in the primary key.
CREATE TABLE account_data (
    localpart TEXT COLLATE "C" NOT NULL,
    room_id   TEXT COLLATE "C" NOT NULL,
    data_type TEXT COLLATE "C" NOT NULL,
    content   TEXT   NOT NULL,
    stream    BIGINT NOT NULL,
    PRIMARY KEY (localpart, room_id, data_type)
);

CREATE INDEX account_data_by_stream ON account_data (localpart, stream);

-- `thread_id` is '' for unthreaded receipts, for the same reason.
CREATE TABLE receipts (
    room_id      TEXT COLLATE "C" NOT NULL,
    user_id      TEXT COLLATE "C" NOT NULL,
    receipt_type TEXT COLLATE "C" NOT NULL,
    thread_id    TEXT COLLATE "C" NOT NULL,
    event_id     TEXT COLLATE "C" NOT NULL,
    ts           BIGINT NOT NULL,
    stream       BIGINT NOT NULL,
    PRIMARY KEY (room_id, user_id, receipt_type, thread_id)
);

CREATE INDEX receipts_by_stream ON receipts (room_id, stream);

-- Filter ids count up per user from 0.
CREATE TABLE filters (
    localpart   TEXT COLLATE "C" NOT NULL,
    filter_id   BIGINT NOT NULL CHECK (filter_id >= 0),
    filter_json TEXT   NOT NULL,
    PRIMARY KEY (localpart, filter_id)
);
