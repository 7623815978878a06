-- Room-wide notifications. An ordinary message notifies every local member but its sender,
-- without highlight: one row per event says so, next to the previous event's row, where a row
-- per recipient touched a page of the primary key per recipient. `event_push_actions` keeps
-- the recipients whose rules decided otherwise (a highlight, a muted room).
CREATE TABLE room_push_actions (
    room_id   TEXT    NOT NULL,
    stream    INTEGER NOT NULL,
    event_id  TEXT    NOT NULL,
    -- Never notified by their own event.
    sender    TEXT    NOT NULL,
    -- As `event_push_actions.thread_id`.
    thread_id TEXT    NOT NULL,
    PRIMARY KEY (room_id, stream)
) STRICT, WITHOUT ROWID;

-- A user's row for an event with a room row replaces it for them (`replaces_room`), with a
-- highlight or, for `notify` 0, with nothing at all (their rules mute it).
ALTER TABLE event_push_actions
    ADD COLUMN notify INTEGER NOT NULL DEFAULT 1 CHECK (notify IN (0, 1));
ALTER TABLE event_push_actions
    ADD COLUMN replaces_room INTEGER NOT NULL DEFAULT 0 CHECK (replaces_room IN (0, 1));

-- Where a member's current join began: room-wide notifications after it are theirs. A join
-- that replaces a join (a new display name) keeps it; other memberships have none. No room
-- row is older than this migration, so the membership's own position will do for existing
-- joins.
ALTER TABLE room_memberships ADD COLUMN joined_since INTEGER;
UPDATE room_memberships SET joined_since = stream WHERE membership = 'join';
