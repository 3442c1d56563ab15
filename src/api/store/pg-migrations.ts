/**
 * The PostgreSQL schema, as an ordered list of migrations (the SQLite one is ./migrations.ts; the
 * two describe the same records). Migration N (1-based) takes `capsa_schema.version` from N-1 to N;
 * `migratePostgres` applies the missing ones in one transaction under an advisory lock, so nodes
 * starting together do not race. Never edit a migration that has shipped: append a new one.
 *
 * Times are milliseconds since the epoch (BIGINT). JSON columns are TEXT.
 */
export const PG_MIGRATIONS: readonly string[] = [
  // 1: the schema of SQLite's migrations 1-2, with module bytes in the database.
  `
  CREATE TABLE tenants (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    policy     TEXT
  );

  CREATE TABLE api_keys (
    id         TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    key_hash   TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
  );
  CREATE INDEX api_keys_tenant ON api_keys (tenant_id, created_at);

  -- Content-addressed bytes, shared by every tenant that uploaded them (and by every node).
  CREATE TABLE module_blobs (
    id    TEXT PRIMARY KEY,
    size  BIGINT NOT NULL,
    bytes BYTEA NOT NULL
  );

  CREATE TABLE modules (
    tenant_id  TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    id         TEXT NOT NULL REFERENCES module_blobs(id),
    size       BIGINT NOT NULL,
    imports    TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, id)
  );
  CREATE INDEX modules_tenant_created ON modules (tenant_id, created_at, id);
  CREATE INDEX modules_id ON modules (id);

  CREATE TABLE runs (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    module_id   TEXT NOT NULL,
    state       TEXT NOT NULL,
    request     TEXT NOT NULL,
    result      TEXT,
    created_at  BIGINT NOT NULL,
    started_at  BIGINT,
    finished_at BIGINT,
    attempts    INTEGER NOT NULL DEFAULT 0,
    cpu_ms      BIGINT NOT NULL DEFAULT 0
  );
  CREATE INDEX runs_tenant_created ON runs (tenant_id, created_at, id);
  CREATE INDEX runs_state_created ON runs (state, created_at, id);
  CREATE INDEX runs_tenant_state_created ON runs (tenant_id, state, created_at, id);
  CREATE INDEX runs_tenant_finished ON runs (tenant_id, finished_at);

  CREATE TABLE run_events (
    run_id  TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    seq     INTEGER NOT NULL,
    type    TEXT NOT NULL,
    data    TEXT NOT NULL,
    at      BIGINT NOT NULL,
    attempt INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (run_id, seq)
  );
  `,
  // 2: the queue in the database (SQLite's migration 3): a run's node and lease, a tenant's place
  // in the fair rotation, numbered by a sequence.
  `
  ALTER TABLE runs ADD COLUMN node_id TEXT;
  ALTER TABLE runs ADD COLUMN lease_until BIGINT;
  ALTER TABLE tenants ADD COLUMN served_seq BIGINT NOT NULL DEFAULT 0;
  CREATE SEQUENCE capsa_served_seq;
  `,
  // 3: per-tenant quotas and retention (JSON), the webhook signing secret, webhook deliveries;
  // runs by module (retention keeps modules a run references). SQLite's migration 4.
  `
  ALTER TABLE tenants ADD COLUMN quotas TEXT;
  ALTER TABLE tenants ADD COLUMN webhook_secret TEXT;
  CREATE TABLE webhook_deliveries (
    id          TEXT PRIMARY KEY,
    run_id      TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    tenant_id   TEXT NOT NULL,
    url         TEXT NOT NULL,
    state       TEXT NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    last_status INTEGER,
    last_error  TEXT,
    next_at     BIGINT,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
  );
  CREATE INDEX webhook_deliveries_run ON webhook_deliveries (run_id, created_at);
  CREATE INDEX webhook_deliveries_state ON webhook_deliveries (state, next_at);
  CREATE INDEX runs_tenant_module ON runs (tenant_id, module_id);
  `,
  // 4: a webhook delivery is claimed like a run (SQLite's migration 5).
  `
  ALTER TABLE webhook_deliveries ADD COLUMN node_id TEXT;
  ALTER TABLE webhook_deliveries ADD COLUMN lease_until BIGINT;
  `,
  // 5: CPU ms per tenant per UTC day, with yesterday's and today's backfilled (SQLite's migration 6,
  // which says why). No foreign key: its check would take a KEY SHARE lock on the tenant row in every
  // finishRun, waiting behind createRun's and the claims' FOR UPDATE of that row.
  `
  CREATE TABLE tenant_cpu_days (
    tenant_id TEXT NOT NULL,
    day       BIGINT NOT NULL,
    cpu_ms    BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, day)
  );
  INSERT INTO tenant_cpu_days (tenant_id, day, cpu_ms)
    SELECT tenant_id, finished_at - finished_at % 86400000, sum(cpu_ms) FROM runs
    WHERE finished_at >= (floor(extract(epoch FROM now()) / 86400)::bigint - 1) * 86400000 AND cpu_ms > 0
    GROUP BY tenant_id, finished_at - finished_at % 86400000;
  `,
];
