-- Notifications: one row per (recipient, event) that the recipient's push rules said to notify
-- about. Sync counts a user's rows in a room after their read receipt, so the primary key
-- (user_id, room_id, stream) is also the index those counts scan. Rooms may be remote and
-- events are never deleted, so there are no foreign keys.
CREATE TABLE event_push_actions (
    user_id   TEXT COLLATE "C" NOT NULL,
    room_id   TEXT COLLATE "C" NOT NULL,
    stream    BIGINT  NOT NULL,
    event_id  TEXT COLLATE "C" NOT NULL,
    -- The thread root for events in a thread, 'main' for the main timeline: the values
    -- `receipts.thread_id` takes for threaded receipts.
    thread_id TEXT COLLATE "C" NOT NULL,
    highlight BOOLEAN NOT NULL,
    PRIMARY KEY (user_id, room_id, stream)
);

-- Redactions remove the rows of one event.
CREATE INDEX event_push_actions_by_event ON event_push_actions (event_id);
