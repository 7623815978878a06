-- End-to-end encryption: device, one-time, fallback and cross-signing keys, the device-list
-- change log, to-device messages and server-side key backups. Everything a device owns hangs
-- off `devices` with ON DELETE CASCADE, so deleting a device (or deactivating its user)
-- removes its keys and undelivered messages without any code knowing about these tables.

CREATE TABLE device_keys (
    localpart TEXT NOT NULL,
    device_id TEXT NOT NULL,
    keys_json TEXT NOT NULL,
    PRIMARY KEY (localpart, device_id),
    FOREIGN KEY (localpart, device_id)
        REFERENCES devices (localpart, device_id) ON DELETE CASCADE
) STRICT, WITHOUT ROWID;

-- The rowid is the upload order: keys are issued oldest first (MSC4225), because clients
-- forget their oldest one-time keys first when they hold too many.
CREATE TABLE one_time_keys (
    id        INTEGER NOT NULL PRIMARY KEY,
    localpart TEXT    NOT NULL,
    device_id TEXT    NOT NULL,
    -- The part of `key_id` before the ':', so that claims and counts need no string parsing.
    algorithm TEXT    NOT NULL,
    key_id    TEXT    NOT NULL,
    key_json  TEXT    NOT NULL,
    UNIQUE (localpart, device_id, key_id),
    FOREIGN KEY (localpart, device_id)
        REFERENCES devices (localpart, device_id) ON DELETE CASCADE
) STRICT;

-- Ends in the rowid, so a claim finds the oldest key of an algorithm without sorting.
CREATE INDEX one_time_keys_by_algorithm ON one_time_keys (localpart, device_id, algorithm);

-- One fallback key per algorithm; a used one stays claimable until the device replaces it.
CREATE TABLE fallback_keys (
    localpart TEXT    NOT NULL,
    device_id TEXT    NOT NULL,
    algorithm TEXT    NOT NULL,
    key_id    TEXT    NOT NULL,
    key_json  TEXT    NOT NULL,
    used      INTEGER NOT NULL DEFAULT 0 CHECK (used IN (0, 1)),
    PRIMARY KEY (localpart, device_id, algorithm),
    FOREIGN KEY (localpart, device_id)
        REFERENCES devices (localpart, device_id) ON DELETE CASCADE
) STRICT, WITHOUT ROWID;

CREATE TABLE cross_signing_keys (
    localpart TEXT NOT NULL REFERENCES users (localpart) ON DELETE CASCADE,
    key_type  TEXT NOT NULL CHECK (key_type IN ('master', 'self_signing', 'user_signing')),
    key_json  TEXT NOT NULL,
    PRIMARY KEY (localpart, key_type)
) STRICT, WITHOUT ROWID;

-- Every change is kept (not only a user's latest), so that a range ending in the past still
-- sees a change that was followed by a later one. Full user ids: remote users will be here
-- once federation tracks their device lists, so there is no foreign key to `users`.
CREATE TABLE device_list_changes (
    stream  INTEGER NOT NULL,
    user_id TEXT    NOT NULL,
    PRIMARY KEY (stream, user_id)
) STRICT, WITHOUT ROWID;

-- Transactions of `sendToDevice` already stored, per sending device; they go with it.
CREATE TABLE to_device_txns (
    localpart TEXT NOT NULL,
    device_id TEXT NOT NULL,
    txn_id    TEXT NOT NULL,
    PRIMARY KEY (localpart, device_id, txn_id),
    FOREIGN KEY (localpart, device_id)
        REFERENCES devices (localpart, device_id) ON DELETE CASCADE
) STRICT, WITHOUT ROWID;

-- Messages waiting for the recipient device. One send may put several messages for a device
-- at the same stream position; the rowid keeps them in the order they were sent.
CREATE TABLE to_device_messages (
    id         INTEGER NOT NULL PRIMARY KEY,
    localpart  TEXT    NOT NULL,
    device_id  TEXT    NOT NULL,
    stream     INTEGER NOT NULL,
    sender     TEXT    NOT NULL,
    event_type TEXT    NOT NULL,
    content    TEXT    NOT NULL,
    FOREIGN KEY (localpart, device_id)
        REFERENCES devices (localpart, device_id) ON DELETE CASCADE
) STRICT;

-- Ends in the rowid: a device's messages in (stream, send) order without sorting.
CREATE INDEX to_device_messages_by_device ON to_device_messages (localpart, device_id, stream);

-- A deleted version stays as a tombstone (`deleted = 1`, keys gone) so that its number is
-- never handed out again: clients tell backups apart by version.
CREATE TABLE backup_versions (
    localpart TEXT    NOT NULL REFERENCES users (localpart) ON DELETE CASCADE,
    version   INTEGER NOT NULL CHECK (version > 0),
    algorithm TEXT    NOT NULL,
    auth_data TEXT    NOT NULL,
    etag      INTEGER NOT NULL DEFAULT 0 CHECK (etag >= 0),
    deleted   INTEGER NOT NULL DEFAULT 0 CHECK (deleted IN (0, 1)),
    PRIMARY KEY (localpart, version)
) STRICT, WITHOUT ROWID;

CREATE TABLE backup_keys (
    localpart           TEXT    NOT NULL,
    version             INTEGER NOT NULL,
    room_id             TEXT    NOT NULL,
    session_id          TEXT    NOT NULL,
    first_message_index INTEGER NOT NULL CHECK (first_message_index >= 0),
    forwarded_count     INTEGER NOT NULL CHECK (forwarded_count >= 0),
    is_verified         INTEGER NOT NULL CHECK (is_verified IN (0, 1)),
    session_data        TEXT    NOT NULL,
    PRIMARY KEY (localpart, version, room_id, session_id),
    FOREIGN KEY (localpart, version)
        REFERENCES backup_versions (localpart, version) ON DELETE CASCADE
) STRICT, WITHOUT ROWID;
