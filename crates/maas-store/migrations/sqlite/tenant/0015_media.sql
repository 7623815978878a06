-- Media (the content repository): what the tenant knows of its own uploads, of other servers'
-- media it cached and of thumbnails. The bytes live in the platform's blob store under their
-- SHA-256; these rows are the tenant's references to them, so every table can say which
-- records name a digest (the blob is kept while any does) and which digests an export carries.
-- No foreign keys: an upload outlives its uploader's account, and a thumbnail may belong to
-- local or to remote media, which one column can't reference.
-- Rows are small (ids, a digest, a name): WITHOUT ROWID keeps each table in one b-tree.

-- Local uploads (`mxc://<server name>/<media_id>`). A pending upload (MSC2246: the id was
-- created, the bytes have not come yet) has no `sha256`, size 0 and an `expires_ts`.
CREATE TABLE media (
    media_id       TEXT    NOT NULL PRIMARY KEY,
    -- The user who uploaded it (or created the id of a pending upload).
    uploader       TEXT    NOT NULL,
    content_type   TEXT,
    file_name      TEXT,
    size           INTEGER NOT NULL CHECK (size >= 0),
    sha256         TEXT,
    created_ts     INTEGER NOT NULL,
    last_access_ts INTEGER NOT NULL,
    expires_ts     INTEGER,
    quarantined    INTEGER NOT NULL DEFAULT 0 CHECK (quarantined IN (0, 1))
) STRICT, WITHOUT ROWID;

-- Listings go by (created_ts, media_id), all of the tenant's or one user's; a user's quota
-- sums the user's rows.
CREATE INDEX media_by_uploader ON media (uploader, created_ts, media_id);
CREATE INDEX media_by_created_ts ON media (created_ts, media_id);
-- Whether a blob is still referenced, and the digests an export carries, in order.
CREATE INDEX media_by_sha256 ON media (sha256);
-- Pending uploads are few among many stored ones: counting a user's (a limit checked when an
-- id is created) and removing the expired ones read only these.
CREATE INDEX media_pending ON media (uploader, expires_ts) WHERE sha256 IS NULL;

-- Other servers' media this tenant fetched and keeps (`mxc://<origin>/<media_id>`).
CREATE TABLE remote_media (
    origin         TEXT    NOT NULL,
    media_id       TEXT    NOT NULL,
    content_type   TEXT,
    file_name      TEXT,
    size           INTEGER NOT NULL CHECK (size >= 0),
    sha256         TEXT    NOT NULL,
    -- When the cache was filled: what the freeze of unauthenticated media goes by.
    fetched_ts     INTEGER NOT NULL,
    last_access_ts INTEGER NOT NULL,
    quarantined    INTEGER NOT NULL DEFAULT 0 CHECK (quarantined IN (0, 1)),
    PRIMARY KEY (origin, media_id)
) STRICT, WITHOUT ROWID;

-- A purge of the cache removes what was served longest ago first, in a repeatable order.
CREATE INDEX remote_media_by_last_access_ts ON remote_media (last_access_ts, origin, media_id);
CREATE INDEX remote_media_by_sha256 ON remote_media (sha256);

-- Thumbnails of local media (`origin` is the tenant's server name) and of remote media, named
-- by the size asked for, the method (`crop` or `scale`) and whether it is animated.
CREATE TABLE media_thumbnails (
    origin       TEXT    NOT NULL,
    media_id     TEXT    NOT NULL,
    width        INTEGER NOT NULL CHECK (width >= 0),
    height       INTEGER NOT NULL CHECK (height >= 0),
    method       TEXT    NOT NULL,
    animated     INTEGER NOT NULL CHECK (animated IN (0, 1)),
    content_type TEXT    NOT NULL,
    size         INTEGER NOT NULL CHECK (size >= 0),
    sha256       TEXT    NOT NULL,
    PRIMARY KEY (origin, media_id, width, height, method, animated)
) STRICT, WITHOUT ROWID;

CREATE INDEX media_thumbnails_by_sha256 ON media_thumbnails (sha256);
-- Deleting local media removes its thumbnails: the store doesn't know the tenant's server
-- name, so they are found by media id (see `delete_media`).
CREATE INDEX media_thumbnails_by_media_id ON media_thumbnails (media_id);
