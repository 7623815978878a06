-- Tenants with events queued for other servers since they were loaded: loaded again when the
-- platform starts, so their queues are delivered without waiting for their users. A row goes
-- once the tenant's queue is empty.
CREATE TABLE federation_pending (
    tenant_id TEXT COLLATE "C" NOT NULL PRIMARY KEY
        REFERENCES tenants (tenant_id) ON DELETE CASCADE
);
