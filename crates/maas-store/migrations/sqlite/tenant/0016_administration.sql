-- What a tenant's admins keep about users, rooms and reports (Synapse-compatible admin API).

-- Account states an admin sets: `locked` (no login, tokens refused), `suspended` (read-only,
-- MSC3823), `shadow_banned` (sends look accepted and reach nobody), `erased` (deactivated with
-- erasure: events are not served to new joiners); `user_type` as Synapse (NULL, `support`,
-- `bot`).
ALTER TABLE users ADD COLUMN locked INTEGER NOT NULL DEFAULT 0 CHECK (locked IN (0, 1));
ALTER TABLE users ADD COLUMN suspended INTEGER NOT NULL DEFAULT 0 CHECK (suspended IN (0, 1));
ALTER TABLE users ADD COLUMN shadow_banned INTEGER NOT NULL DEFAULT 0
    CHECK (shadow_banned IN (0, 1));
ALTER TABLE users ADD COLUMN erased INTEGER NOT NULL DEFAULT 0 CHECK (erased IN (0, 1));
ALTER TABLE users ADD COLUMN user_type TEXT;

-- A user's own message rate limit, replacing the tenant's (0 and 0: unlimited).
CREATE TABLE ratelimit_overrides (
    localpart           TEXT    NOT NULL PRIMARY KEY REFERENCES users (localpart) ON DELETE CASCADE,
    messages_per_second INTEGER NOT NULL,
    burst_count         INTEGER NOT NULL
) STRICT;

-- Identities of a user at external providers (SSO, LDAP): one user per provider identity.
CREATE TABLE user_external_ids (
    auth_provider TEXT NOT NULL,
    external_id   TEXT NOT NULL,
    localpart     TEXT NOT NULL REFERENCES users (localpart) ON DELETE CASCADE,
    PRIMARY KEY (auth_provider, external_id)
) STRICT;

CREATE INDEX user_external_ids_by_user ON user_external_ids (localpart);

-- Access tokens an admin took to act as a user (Synapse: "Login as a user"). They belong to no
-- device of the user, so the user doesn't see them; `device_id` only names the session. They
-- end at `valid_until_ms`, with a logout of their own, or when the admin logs out everywhere.
CREATE TABLE puppet_tokens (
    token_hash     TEXT    NOT NULL PRIMARY KEY,
    localpart      TEXT    NOT NULL REFERENCES users (localpart) ON DELETE CASCADE,
    device_id      TEXT    NOT NULL,
    admin          TEXT    NOT NULL REFERENCES users (localpart) ON DELETE CASCADE,
    valid_until_ms INTEGER,
    created_ts     INTEGER NOT NULL
) STRICT;

CREATE INDEX puppet_tokens_by_user ON puppet_tokens (localpart, device_id);
CREATE INDEX puppet_tokens_by_admin ON puppet_tokens (admin);

-- Reports by users: of an event (`event_id` set), a room, or a user (`target_user_id` set).
-- Room ids are not foreign keys: a report outlives the purge of its room.
CREATE TABLE reports (
    report_id      INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    received_ts    INTEGER NOT NULL,
    kind           TEXT    NOT NULL CHECK (kind IN ('event', 'room', 'user')),
    room_id        TEXT,
    event_id       TEXT,
    target_user_id TEXT,
    reporter       TEXT    NOT NULL,
    reason         TEXT,
    score          INTEGER
) STRICT;

CREATE INDEX reports_by_kind ON reports (kind, report_id);

-- Rooms no local user may join (admin block, or a room deleted with `block`).
CREATE TABLE blocked_rooms (
    room_id    TEXT    NOT NULL PRIMARY KEY,
    user_id    TEXT    NOT NULL,
    blocked_ts INTEGER NOT NULL
) STRICT;

-- Long admin operations (room deletion, history purge) and their outcome, kept so that their
-- status can be asked after a restart (Synapse: scheduled tasks).
CREATE TABLE admin_tasks (
    task_id     TEXT    NOT NULL PRIMARY KEY,
    action      TEXT    NOT NULL,
    resource_id TEXT    NOT NULL,
    status      TEXT    NOT NULL CHECK (status IN ('scheduled', 'active', 'complete', 'failed')),
    params      TEXT    NOT NULL,
    result      TEXT,
    error       TEXT,
    created_ts  INTEGER NOT NULL,
    updated_ts  INTEGER NOT NULL
) STRICT;

CREATE INDEX admin_tasks_by_resource ON admin_tasks (resource_id, created_ts);

-- The room in which a user receives server notices, created on the first notice.
CREATE TABLE server_notice_rooms (
    localpart TEXT NOT NULL PRIMARY KEY,
    room_id   TEXT NOT NULL
) STRICT;

-- Who quarantined media, and local media protected from quarantine (Synapse's `quarantined_by`
-- and `safe_from_quarantine`, which its admin API reports and its bulk quarantines honour).
-- `quarantined_by` stays NULL for media quarantined before this column, or by the operator:
-- the admin API names the tenant's server name for those.

ALTER TABLE media ADD COLUMN quarantined_by TEXT;
ALTER TABLE media ADD COLUMN safe_from_quarantine INTEGER NOT NULL DEFAULT 0
    CHECK (safe_from_quarantine IN (0, 1));
ALTER TABLE remote_media ADD COLUMN quarantined_by TEXT;

-- Until when a user may replace their master cross-signing key without user-interactive auth
-- (ms), as an admin allowed (Synapse's `updatable_without_uia_before_ms`); NULL: never.
ALTER TABLE cross_signing_keys ADD COLUMN replaceable_without_uia_before_ms INTEGER;
