-- Federation. The outbound queue: one row per (destination server, PDU), written in the
-- transaction of its event and deleted once the destination acknowledged it. The PDU itself
-- is read from `events` (its current form, redacted or not), so a row only names it; the
-- primary key is the order a destination's queue is sent in.
CREATE TABLE federation_outbox (
    destination TEXT    NOT NULL,
    stream      INTEGER NOT NULL,
    event_id    TEXT    NOT NULL,
    PRIMARY KEY (destination, stream)
) STRICT, WITHOUT ROWID;

-- Transactions received from other servers with the answer given, so that an origin's retry
-- is answered again rather than applied again. A rowid table: an answer names every PDU of
-- its transaction, often rows larger than WITHOUT ROWID tables suit.
CREATE TABLE federation_inbox (
    origin      TEXT    NOT NULL,
    txn_id      TEXT    NOT NULL,
    response    TEXT    NOT NULL,
    received_ts INTEGER NOT NULL,
    PRIMARY KEY (origin, txn_id)
) STRICT;

-- Retention removes the oldest first.
CREATE INDEX federation_inbox_by_received_ts ON federation_inbox (received_ts);
