-- Redactions find the notifications of an event by its stream position rather than its id.
-- Positions only grow, so the index takes each new row at its end (the pages of a batch of
-- events are shared) where an index on event ids took every row at a random place: one more
-- page written per event.
DROP INDEX event_push_actions_by_event;
CREATE INDEX event_push_actions_by_stream ON event_push_actions (stream);
