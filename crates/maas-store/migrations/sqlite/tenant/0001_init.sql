-- One tenant's homeserver: keys, accounts, devices, sessions.
-- STRICT makes SQLite reject values of the wrong type instead of storing them silently;
-- booleans are INTEGER 0/1.

CREATE TABLE signing_keys (
    key_id     TEXT    NOT NULL PRIMARY KEY,
    pkcs8      BLOB    NOT NULL,
    created_ts INTEGER NOT NULL
) STRICT;

CREATE TABLE users (
    localpart     TEXT    NOT NULL PRIMARY KEY,
    password_hash TEXT,
    admin         INTEGER NOT NULL DEFAULT 0 CHECK (admin IN (0, 1)),
    guest         INTEGER NOT NULL DEFAULT 0 CHECK (guest IN (0, 1)),
    deactivated   INTEGER NOT NULL DEFAULT 0 CHECK (deactivated IN (0, 1)),
    displayname   TEXT,
    avatar_url    TEXT,
    created_ts    INTEGER NOT NULL
) STRICT;

-- A third-party id belongs to at most one user of the tenant.
CREATE TABLE user_threepids (
    medium       TEXT    NOT NULL,
    address      TEXT    NOT NULL,
    localpart    TEXT    NOT NULL REFERENCES users (localpart) ON DELETE CASCADE,
    validated_ts INTEGER NOT NULL,
    added_ts     INTEGER NOT NULL,
    PRIMARY KEY (medium, address)
) STRICT;

CREATE INDEX user_threepids_by_user ON user_threepids (localpart);

CREATE TABLE devices (
    localpart    TEXT    NOT NULL REFERENCES users (localpart) ON DELETE CASCADE,
    device_id    TEXT    NOT NULL,
    display_name TEXT,
    last_seen_ts INTEGER,
    last_seen_ip TEXT,
    created_ts   INTEGER NOT NULL,
    PRIMARY KEY (localpart, device_id)
) STRICT;

-- Deleting a device deletes its tokens through the cascade.
CREATE TABLE access_tokens (
    token_hash TEXT    NOT NULL PRIMARY KEY,
    localpart  TEXT    NOT NULL,
    device_id  TEXT    NOT NULL,
    created_ts INTEGER NOT NULL,
    FOREIGN KEY (localpart, device_id)
        REFERENCES devices (localpart, device_id) ON DELETE CASCADE
) STRICT;

CREATE INDEX access_tokens_by_device ON access_tokens (localpart, device_id);

CREATE TABLE uia_sessions (
    session_id         TEXT    NOT NULL PRIMARY KEY,
    purpose            TEXT    NOT NULL,
    -- JSON array of the stage types completed so far.
    completed          TEXT    NOT NULL,
    registration_token TEXT,
    created_ts         INTEGER NOT NULL
) STRICT;

CREATE INDEX uia_sessions_by_created ON uia_sessions (created_ts);
CREATE INDEX uia_sessions_by_registration_token ON uia_sessions (registration_token, created_ts)
    WHERE registration_token IS NOT NULL;

CREATE TABLE registration_tokens (
    token        TEXT    NOT NULL PRIMARY KEY,
    uses_allowed INTEGER CHECK (uses_allowed >= 0),
    completed    INTEGER NOT NULL DEFAULT 0 CHECK (completed >= 0),
    expiry_time  INTEGER,
    created_ts   INTEGER NOT NULL
) STRICT;
