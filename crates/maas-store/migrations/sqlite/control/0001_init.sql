-- The control plane: tenants and the host names they answer on.
-- STRICT makes SQLite reject values of the wrong type instead of storing them silently.

CREATE TABLE tenants (
    tenant_id   TEXT    NOT NULL PRIMARY KEY,
    server_name TEXT    NOT NULL UNIQUE,
    -- TenantSettings as JSON, so that new settings need no migration.
    settings    TEXT    NOT NULL,
    created_ts  INTEGER NOT NULL
) STRICT;

CREATE TABLE tenant_hosts (
    host      TEXT    NOT NULL PRIMARY KEY,
    tenant_id TEXT    NOT NULL REFERENCES tenants (tenant_id) ON DELETE CASCADE,
    -- Order of the hosts as given; the first one is the tenant's primary host.
    position  INTEGER NOT NULL
) STRICT;

CREATE INDEX tenant_hosts_by_tenant ON tenant_hosts (tenant_id, position);
