-- A transaction id is scoped to its device and its request path (spec: "Transaction
-- identifiers"): the same id sent to another room, with another event type or to another
-- endpoint is another request. The scope is the endpoint and its path parameters as a compact
-- JSON array, e.g. ["send","!room:example.org","m.room.message"].
ALTER TABLE events ADD COLUMN txn_scope TEXT COLLATE "C";

UPDATE events
    SET txn_scope = '["send",' || to_json(room_id)::text || ',' || to_json(event_type)::text || ']'
    WHERE txn_id IS NOT NULL AND event_type <> 'm.room.redaction';
UPDATE events
    SET txn_scope = '["redact",' || to_json(room_id)::text || ','
        || to_json(coalesce(pdu::jsonb #>> '{content,redacts}', pdu::jsonb ->> 'redacts', ''))::text
        || ']'
    WHERE txn_id IS NOT NULL AND event_type = 'm.room.redaction';

DROP INDEX events_by_txn;
CREATE UNIQUE INDEX events_by_txn ON events (txn_localpart, txn_device_id, txn_scope, txn_id)
    WHERE txn_id IS NOT NULL;

-- The same for `sendToDevice`, whose path names the event type. Transactions stored before
-- carry no scope: they are only ever looked up by retries, which by now are long over.
ALTER TABLE to_device_txns ADD COLUMN scope TEXT COLLATE "C" NOT NULL DEFAULT '';
ALTER TABLE to_device_txns ALTER COLUMN scope DROP DEFAULT;
ALTER TABLE to_device_txns DROP CONSTRAINT to_device_txns_pkey;
ALTER TABLE to_device_txns ADD PRIMARY KEY (localpart, device_id, scope, txn_id);
