-- Signatures a user made of other users' keys (their user-signing key on a master key): only
-- the signer sees them, so only the signer's `device_lists.changed` names the target.
CREATE TABLE signature_changes (
    stream INTEGER NOT NULL,
    signer TEXT    NOT NULL,
    target TEXT    NOT NULL,
    PRIMARY KEY (signer, stream, target)
) STRICT, WITHOUT ROWID;
