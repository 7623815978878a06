-- One tenant's homeserver: keys, accounts, devices, sessions. Lives in the tenant's schema
-- (`t_<tenant_id>`); the store sets `search_path`, so names here are unqualified.
-- Ids sort with COLLATE "C" (byte order, as on SQLite) whatever the database's locale, so that
-- paging and exports see the same order on both backends.

CREATE TABLE signing_keys (
    key_id     TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    pkcs8      BYTEA  NOT NULL,
    created_ts BIGINT NOT NULL
);

CREATE TABLE users (
    localpart     TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    password_hash TEXT,
    admin         BOOLEAN NOT NULL DEFAULT FALSE,
    guest         BOOLEAN NOT NULL DEFAULT FALSE,
    deactivated   BOOLEAN NOT NULL DEFAULT FALSE,
    displayname   TEXT,
    avatar_url    TEXT,
    created_ts    BIGINT  NOT NULL
);

-- A third-party id belongs to at most one user of the tenant.
CREATE TABLE user_threepids (
    medium       TEXT COLLATE "C" NOT NULL,
    address      TEXT COLLATE "C" NOT NULL,
    localpart    TEXT COLLATE "C" NOT NULL REFERENCES users (localpart) ON DELETE CASCADE,
    validated_ts BIGINT NOT NULL,
    added_ts     BIGINT NOT NULL,
    PRIMARY KEY (medium, address)
);

CREATE INDEX user_threepids_by_user ON user_threepids (localpart);

CREATE TABLE devices (
    localpart    TEXT COLLATE "C" NOT NULL REFERENCES users (localpart) ON DELETE CASCADE,
    device_id    TEXT COLLATE "C" NOT NULL,
    display_name TEXT,
    last_seen_ts BIGINT,
    last_seen_ip TEXT,
    created_ts   BIGINT NOT NULL,
    PRIMARY KEY (localpart, device_id)
);

-- Deleting a device deletes its tokens through the cascade.
CREATE TABLE access_tokens (
    token_hash TEXT   NOT NULL PRIMARY KEY,
    localpart  TEXT COLLATE "C" NOT NULL,
    device_id  TEXT COLLATE "C" NOT NULL,
    created_ts BIGINT NOT NULL,
    FOREIGN KEY (localpart, device_id)
        REFERENCES devices (localpart, device_id) ON DELETE CASCADE
);

CREATE INDEX access_tokens_by_device ON access_tokens (localpart, device_id);

CREATE TABLE uia_sessions (
    session_id         TEXT   NOT NULL PRIMARY KEY,
    purpose            TEXT   NOT NULL,
    -- JSON array of the stage types completed so far.
    completed          TEXT   NOT NULL,
    registration_token TEXT,
    created_ts         BIGINT NOT NULL
);

CREATE INDEX uia_sessions_by_created ON uia_sessions (created_ts);
CREATE INDEX uia_sessions_by_registration_token ON uia_sessions (registration_token, created_ts)
    WHERE registration_token IS NOT NULL;

CREATE TABLE registration_tokens (
    token        TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    uses_allowed BIGINT CHECK (uses_allowed >= 0),
    completed    BIGINT NOT NULL DEFAULT 0 CHECK (completed >= 0),
    expiry_time  BIGINT,
    created_ts   BIGINT NOT NULL
);
