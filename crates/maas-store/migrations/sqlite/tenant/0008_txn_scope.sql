-- A transaction id is scoped to its device and its request path (spec: "Transaction
-- identifiers"): the same id sent to another room, with another event type or to another
-- endpoint is another request. The scope is the endpoint and its path parameters as a JSON
-- array, e.g. ["send","!room:example.org","m.room.message"].
ALTER TABLE events ADD COLUMN txn_scope TEXT;

UPDATE events SET txn_scope = json_array('send', room_id, event_type)
    WHERE txn_id IS NOT NULL AND event_type <> 'm.room.redaction';
UPDATE events
    SET txn_scope = json_array('redact', room_id,
                               coalesce(json_extract(pdu, '$.content.redacts'),
                                        json_extract(pdu, '$.redacts'), ''))
    WHERE txn_id IS NOT NULL AND event_type = 'm.room.redaction';

DROP INDEX events_by_txn;
CREATE UNIQUE INDEX events_by_txn ON events (txn_localpart, txn_device_id, txn_scope, txn_id)
    WHERE txn_id IS NOT NULL;

-- The same for `sendToDevice`, whose path names the event type. Transactions stored before
-- carry no scope: they are only ever looked up by retries, which by now are long over.
-- Columns in the order PostgreSQL's added column gives them, so archives move between the two.
CREATE TABLE to_device_txns_scoped (
    localpart TEXT NOT NULL,
    device_id TEXT NOT NULL,
    txn_id    TEXT NOT NULL,
    scope     TEXT NOT NULL,
    PRIMARY KEY (localpart, device_id, scope, txn_id),
    FOREIGN KEY (localpart, device_id)
        REFERENCES devices (localpart, device_id) ON DELETE CASCADE
) STRICT, WITHOUT ROWID;
INSERT INTO to_device_txns_scoped (localpart, device_id, txn_id, scope)
    SELECT localpart, device_id, txn_id, '' FROM to_device_txns;
DROP TABLE to_device_txns;
ALTER TABLE to_device_txns_scoped RENAME TO to_device_txns;
