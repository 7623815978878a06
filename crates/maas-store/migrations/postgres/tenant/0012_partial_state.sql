-- Rooms joined over federation with partial state (`send_join` with `omit_members`): the
-- resident server left the member events out; they are fetched in the background, and the row
-- is deleted once they are stored.
CREATE TABLE partial_state_rooms (
    room_id       TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    join_event_id TEXT COLLATE "C" NOT NULL,
    -- The state the join was checked against: it and the room's later snapshots lack the
    -- omitted members.
    state_group   BIGINT NOT NULL,
    -- JSON array of the servers in the room at the join.
    servers       TEXT   NOT NULL
);
