-- Federation. The outbound queue: one row per (destination server, PDU), written in the
-- transaction of its event and deleted once the destination acknowledged it. The PDU itself
-- is read from `events` (its current form, redacted or not), so a row only names it; the
-- primary key is the order a destination's queue is sent in.
CREATE TABLE federation_outbox (
    destination TEXT COLLATE "C" NOT NULL,
    stream      BIGINT NOT NULL,
    event_id    TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (destination, stream)
);

-- Transactions received from other servers with the answer given, so that an origin's retry
-- is answered again rather than applied again.
CREATE TABLE federation_inbox (
    origin      TEXT COLLATE "C" NOT NULL,
    txn_id      TEXT COLLATE "C" NOT NULL,
    response    TEXT   NOT NULL,
    received_ts BIGINT NOT NULL,
    PRIMARY KEY (origin, txn_id)
);

-- Retention removes the oldest first.
CREATE INDEX federation_inbox_by_received_ts ON federation_inbox (received_ts);
