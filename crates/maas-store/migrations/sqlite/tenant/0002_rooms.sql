-- Rooms: the event DAG as full PDUs, compact state (snapshots plus deltas), current
-- memberships, aliases and the directory, and per-user room data (account data, receipts,
-- filters). Every change sync must see carries a position in the tenant's single stream.

-- One row of counters that must survive restarts. `stream_reserved` only ever grows, so
-- positions handed out after a restart can't collide with stored ones.
CREATE TABLE counters (
    id               INTEGER NOT NULL PRIMARY KEY CHECK (id = 0),
    stream_reserved  INTEGER NOT NULL,
    last_state_group INTEGER NOT NULL
) STRICT;

INSERT INTO counters (id, stream_reserved, last_state_group) VALUES (0, 0, 0);

CREATE TABLE rooms (
    room_id      TEXT    NOT NULL PRIMARY KEY,
    room_version TEXT    NOT NULL,
    creator      TEXT    NOT NULL,
    created_ts   INTEGER NOT NULL,
    published    INTEGER NOT NULL DEFAULT 0 CHECK (published IN (0, 1)),
    -- The resolved state after the forward extremities. No foreign key: a room may be
    -- recorded before the group of its first event is written.
    state_group  INTEGER NOT NULL
) STRICT;

-- The public directory pages through published rooms by room id.
CREATE INDEX rooms_published ON rooms (room_id) WHERE published = 1;

-- A state group is a full snapshot (`prev_group` NULL) or a delta against `prev_group`.
CREATE TABLE state_groups (
    id         INTEGER NOT NULL PRIMARY KEY,
    room_id    TEXT    NOT NULL,
    prev_group INTEGER REFERENCES state_groups (id),
    chain_len  INTEGER NOT NULL CHECK (chain_len >= 0)
) STRICT;

CREATE INDEX state_groups_by_prev ON state_groups (prev_group) WHERE prev_group IS NOT NULL;

-- Entries of a group: all of them for a snapshot, only the added or replaced ones for a delta.
CREATE TABLE state_group_entries (
    group_id   INTEGER NOT NULL REFERENCES state_groups (id) ON DELETE CASCADE,
    event_type TEXT    NOT NULL,
    state_key  TEXT    NOT NULL,
    event_id   TEXT    NOT NULL,
    PRIMARY KEY (group_id, event_type, state_key)
) STRICT, WITHOUT ROWID;

-- The stream position is the rowid: it is unique per event, and timeline ranges read the
-- table in its own order.
CREATE TABLE events (
    stream           INTEGER NOT NULL PRIMARY KEY,
    event_id         TEXT    NOT NULL UNIQUE,
    room_id          TEXT    NOT NULL,
    depth            INTEGER NOT NULL,
    event_type       TEXT    NOT NULL,
    state_key        TEXT,
    sender           TEXT    NOT NULL,
    origin_server_ts INTEGER NOT NULL,
    -- Canonical JSON; the redacted form once redacted.
    pdu              TEXT    NOT NULL,
    state_before     INTEGER NOT NULL,
    state_after      INTEGER NOT NULL,
    redacted_by      TEXT,
    -- The client transaction that sent the event: all three or none.
    txn_localpart    TEXT,
    txn_device_id    TEXT,
    txn_id           TEXT,
    -- `content.m.relates_to`: both or none.
    rel_type         TEXT,
    parent_event_id  TEXT,
    CHECK ((txn_localpart IS NULL) = (txn_device_id IS NULL)
           AND (txn_device_id IS NULL) = (txn_id IS NULL)),
    CHECK ((rel_type IS NULL) = (parent_event_id IS NULL))
) STRICT;

-- Both indexes end in the rowid (the stream), so ties are ordered by stream for free.
CREATE INDEX events_by_room ON events (room_id, stream);
CREATE INDEX events_by_room_ts ON events (room_id, origin_server_ts);
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
    room_id  TEXT NOT NULL,
    event_id TEXT NOT NULL,
    PRIMARY KEY (room_id, event_id)
) STRICT, WITHOUT ROWID;

-- Current membership per (room, user); rooms may be remote-only (an invite over federation),
-- so there is no foreign key to `rooms`.
CREATE TABLE room_memberships (
    room_id        TEXT    NOT NULL,
    user_id        TEXT    NOT NULL,
    membership     TEXT    NOT NULL
        CHECK (membership IN ('join', 'invite', 'leave', 'ban', 'knock')),
    event_id       TEXT    NOT NULL,
    stream         INTEGER NOT NULL,
    sender         TEXT    NOT NULL,
    -- JSON array shown with an invite or knock.
    stripped_state TEXT,
    PRIMARY KEY (room_id, user_id)
) STRICT, WITHOUT ROWID;

-- "Rooms of a user" and "what changed for a user since" without reading other users' rows.
CREATE INDEX room_memberships_by_user ON room_memberships (user_id, stream);

-- Rooms a user forgot; the row goes when their membership changes again.
CREATE TABLE forgotten_rooms (
    room_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    PRIMARY KEY (room_id, user_id)
) STRICT, WITHOUT ROWID;

CREATE TABLE room_aliases (
    alias   TEXT NOT NULL PRIMARY KEY,
    room_id TEXT NOT NULL,
    creator TEXT NOT NULL
) STRICT;

CREATE INDEX room_aliases_by_room ON room_aliases (room_id);

-- `room_id` is '' for global account data: NULLs would be distinct in the primary key.
CREATE TABLE account_data (
    localpart TEXT    NOT NULL,
    room_id   TEXT    NOT NULL,
    data_type TEXT    NOT NULL,
    content   TEXT    NOT NULL,
    stream    INTEGER NOT NULL,
    PRIMARY KEY (localpart, room_id, data_type)
) STRICT, WITHOUT ROWID;

CREATE INDEX account_data_by_stream ON account_data (localpart, stream);

-- `thread_id` is '' for unthreaded receipts, for the same reason.
CREATE TABLE receipts (
    room_id      TEXT    NOT NULL,
    user_id      TEXT    NOT NULL,
    receipt_type TEXT    NOT NULL,
    thread_id    TEXT    NOT NULL,
    event_id     TEXT    NOT NULL,
    ts           INTEGER NOT NULL,
    stream       INTEGER NOT NULL,
    PRIMARY KEY (room_id, user_id, receipt_type, thread_id)
) STRICT, WITHOUT ROWID;

CREATE INDEX receipts_by_stream ON receipts (room_id, stream);

-- Filter ids count up per user from 0.
CREATE TABLE filters (
    localpart   TEXT    NOT NULL,
    filter_id   INTEGER NOT NULL CHECK (filter_id >= 0),
    filter_json TEXT    NOT NULL,
    PRIMARY KEY (localpart, filter_id)
) STRICT, WITHOUT ROWID;
