-- "Whose membership in these rooms changed since": every incremental sync asks it of the rooms
-- with new events, for the device lists it must mention, and it should cost what changed, not
-- the size of the rooms.
CREATE INDEX room_memberships_by_room_stream ON room_memberships (room_id, stream);
