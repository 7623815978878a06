-- End-to-end encryption: device, one-time, fallback and cross-signing keys, the device-list
-- change log, to-device messages and server-side key backups. Everything a device owns hangs
-- off `devices` with ON DELETE CASCADE, so deleting a device (or deactivating its user)
-- removes its keys and undelivered messages without any code knowing about these tables.
-- Keys and messages are opaque JSON kept as TEXT, byte for byte: the store compares uploads
-- with what it holds, and JSONB would reformat them.

CREATE TABLE device_keys (
    localpart TEXT COLLATE "C" NOT NULL,
    device_id TEXT COLLATE "C" NOT NULL,
    keys_json TEXT NOT NULL,
    PRIMARY KEY (localpart, device_id),
    FOREIGN KEY (localpart, device_id)
        REFERENCES devices (localpart, device_id) ON DELETE CASCADE
);

-- `id` is the upload order: keys are issued oldest first (MSC4225), because clients forget
-- their oldest one-time keys first when they hold too many.
CREATE TABLE one_time_keys (
    id        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    localpart TEXT COLLATE "C" NOT NULL,
    device_id TEXT COLLATE "C" NOT NULL,
    -- The part of `key_id` before the ':', so that claims and counts need no string parsing.
    algorithm TEXT COLLATE "C" NOT NULL,
    key_id    TEXT COLLATE "C" NOT NULL,
    key_json  TEXT NOT NULL,
    UNIQUE (localpart, device_id, key_id),
    FOREIGN KEY (localpart, device_id)
        REFERENCES devices (localpart, device_id) ON DELETE CASCADE
);

-- Ends in `id`, so a claim finds the oldest key of an algorithm without sorting.
CREATE INDEX one_time_keys_by_algorithm ON one_time_keys (localpart, device_id, algorithm, id);

-- One fallback key per algorithm; a used one stays claimable until the device replaces it.
CREATE TABLE fallback_keys (
    localpart TEXT COLLATE "C" NOT NULL,
    device_id TEXT COLLATE "C" NOT NULL,
    algorithm TEXT COLLATE "C" NOT NULL,
    key_id    TEXT COLLATE "C" NOT NULL,
    key_json  TEXT    NOT NULL,
    used      BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (localpart, device_id, algorithm),
    FOREIGN KEY (localpart, device_id)
        REFERENCES devices (localpart, device_id) ON DELETE CASCADE
);

CREATE TABLE cross_signing_keys (
    localpart TEXT COLLATE "C" NOT NULL REFERENCES users (localpart) ON DELETE CASCADE,
    key_type  TEXT COLLATE "C" NOT NULL
        CHECK (key_type IN ('master', 'self_signing', 'user_signing')),
    key_json  TEXT NOT NULL,
    PRIMARY KEY (localpart, key_type)
);

-- Every change is kept (not only a user's latest), so that a range ending in the past still
-- sees a change that was followed by a later one. Full user ids: remote users will be here
-- once federation tracks their device lists, so there is no foreign key to `users`.
CREATE TABLE device_list_changes (
    stream  BIGINT NOT NULL,
    user_id TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (stream, user_id)
);

-- Transactions of `sendToDevice` already stored, per sending device; they go with it.
CREATE TABLE to_device_txns (
    localpart TEXT COLLATE "C" NOT NULL,
    device_id TEXT COLLATE "C" NOT NULL,
    txn_id    TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (localpart, device_id, txn_id),
    FOREIGN KEY (localpart, device_id)
        REFERENCES devices (localpart, device_id) ON DELETE CASCADE
);

-- Messages waiting for the recipient device. One send may put several messages for a device
-- at the same stream position; `id` keeps them in the order they were sent.
CREATE TABLE to_device_messages (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    localpart  TEXT COLLATE "C" NOT NULL,
    device_id  TEXT COLLATE "C" NOT NULL,
    stream     BIGINT NOT NULL,
    sender     TEXT   NOT NULL,
    event_type TEXT   NOT NULL,
    content    TEXT   NOT NULL,
    FOREIGN KEY (localpart, device_id)
        REFERENCES devices (localpart, device_id) ON DELETE CASCADE
);

-- Ends in `id`: a device's messages in (stream, send) order without sorting.
CREATE INDEX to_device_messages_by_device
    ON to_device_messages (localpart, device_id, stream, id);

-- A deleted version stays as a tombstone (`deleted`, keys gone) so that its number is never
-- handed out again: clients tell backups apart by version.
CREATE TABLE backup_versions (
    localpart TEXT COLLATE "C" NOT NULL REFERENCES users (localpart) ON DELETE CASCADE,
    version   BIGINT  NOT NULL CHECK (version > 0),
    algorithm TEXT    NOT NULL,
    auth_data TEXT    NOT NULL,
    etag      BIGINT  NOT NULL DEFAULT 0 CHECK (etag >= 0),
    deleted   BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (localpart, version)
);

CREATE TABLE backup_keys (
    localpart           TEXT COLLATE "C" NOT NULL,
    version             BIGINT  NOT NULL,
    room_id             TEXT COLLATE "C" NOT NULL,
    session_id          TEXT COLLATE "C" NOT NULL,
    first_message_index BIGINT  NOT NULL CHECK (first_message_index >= 0),
    forwarded_count     BIGINT  NOT NULL CHECK (forwarded_count >= 0),
    is_verified         BOOLEAN NOT NULL,
    session_data        TEXT    NOT NULL,
    PRIMARY KEY (localpart, version, room_id, session_id),
    FOREIGN KEY (localpart, version)
        REFERENCES backup_versions (localpart, version) ON DELETE CASCADE
);
