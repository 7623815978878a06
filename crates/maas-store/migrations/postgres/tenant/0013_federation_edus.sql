-- EDUs queued for other servers that must reach them as surely as PDUs: to-device messages
-- (acknowledged to the client that sent them), device list and signing key updates. Rows are
-- deleted once the destination acknowledged their transaction; an id is never handed out
-- twice, since transaction ids are made of them.
CREATE TABLE federation_outbox_edus (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    destination TEXT COLLATE "C" NOT NULL,
    -- The EDU as JSON (`edu_type` and `content`).
    edu         TEXT NOT NULL
);

CREATE INDEX federation_outbox_edus_by_destination ON federation_outbox_edus (destination, id);
