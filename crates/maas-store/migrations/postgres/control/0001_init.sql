-- The control plane: tenants and the host names they answer on. Lives in the schema
-- `maas_control`; the store sets `search_path`, so names here are unqualified.
-- Constraints are named because the store tells conflicts apart by constraint name.
-- Ids sort with COLLATE "C" (byte order, as on SQLite) whatever the database's locale.

CREATE TABLE tenants (
    tenant_id   TEXT COLLATE "C" NOT NULL,
    server_name TEXT   NOT NULL,
    -- TenantSettings as JSON, so that new settings need no migration. TEXT rather than JSONB:
    -- the store reads and writes whole documents and never queries inside them.
    settings    TEXT   NOT NULL,
    created_ts  BIGINT NOT NULL,
    CONSTRAINT tenants_pkey PRIMARY KEY (tenant_id),
    CONSTRAINT tenants_server_name_key UNIQUE (server_name)
);

CREATE TABLE tenant_hosts (
    host      TEXT   NOT NULL,
    tenant_id TEXT COLLATE "C" NOT NULL REFERENCES tenants (tenant_id) ON DELETE CASCADE,
    -- Order of the hosts as given; the first one is the tenant's primary host.
    position  BIGINT NOT NULL,
    CONSTRAINT tenant_hosts_pkey PRIMARY KEY (host)
);

CREATE INDEX tenant_hosts_by_tenant ON tenant_hosts (tenant_id, position);
