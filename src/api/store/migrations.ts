/**
 * The SQLite schema, as an ordered list of migrations. Migration N (1-based) takes the database
 * from `PRAGMA user_version` N-1 to N; `createSqliteStore` applies the missing ones in one
 * transaction at open. Never edit a migration that has shipped: append a new one.
 *
 * Times are milliseconds since the epoch (INTEGER). JSON columns are TEXT.
 */
export const MIGRATIONS: readonly string[] = [
  // 1: the first schema.
  `
  CREATE TABLE tenants (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    policy     TEXT
  );

  CREATE TABLE api_keys (
    id         TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    key_hash   TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
  );
  CREATE INDEX api_keys_tenant ON api_keys (tenant_id, created_at);

  -- A tenant's reference to content-addressed bytes at <dir>/modules/sha256/<hex>.
  CREATE TABLE modules (
    tenant_id  TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    id         TEXT NOT NULL,
    size       INTEGER NOT NULL,
    imports    TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, id)
  ) WITHOUT ROWID;
  CREATE INDEX modules_tenant_created ON modules (tenant_id, created_at, id);
  -- Whether any tenant still references a file.
  CREATE INDEX modules_id ON modules (id);

  CREATE TABLE runs (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    module_id   TEXT NOT NULL,
    state       TEXT NOT NULL,
    request     TEXT NOT NULL,
    result      TEXT,
    created_at  INTEGER NOT NULL,
    started_at  INTEGER,
    finished_at INTEGER,
    attempts    INTEGER NOT NULL DEFAULT 0,
    cpu_ms      INTEGER NOT NULL DEFAULT 0
  );
  CREATE INDEX runs_tenant_created ON runs (tenant_id, created_at, id);
  CREATE INDEX runs_state_created ON runs (state, created_at, id);
  -- listRuns filtered by state, countRuns.
  CREATE INDEX runs_tenant_state_created ON runs (tenant_id, state, created_at, id);
  -- cpuUsedSince.
  CREATE INDEX runs_tenant_finished ON runs (tenant_id, finished_at);

  CREATE TABLE run_events (
    run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    seq    INTEGER NOT NULL,
    type   TEXT NOT NULL,
    data   TEXT NOT NULL,
    at     INTEGER NOT NULL,
    PRIMARY KEY (run_id, seq)
  ) WITHOUT ROWID;
  `,
  // 2: each event says the attempt of its run it belongs to (0: before any started). Older events
  // get theirs by counting the run's 'running' status events up to them (each attempt begins with one).
  `
  ALTER TABLE run_events ADD COLUMN attempt INTEGER NOT NULL DEFAULT 0;
  UPDATE run_events SET attempt = (
    SELECT count(*) FROM run_events AS s
    WHERE s.run_id = run_events.run_id AND s.seq <= run_events.seq
      AND s.type = 'status' AND json_extract(s.data, '$.state') = 'running'
  );
  `,
  // 3: the queue in the database. A run's node (the one that started its latest attempt) and its
  // lease (ms; a running run whose lease ended is recovered by any node); a tenant's place in the
  // fair rotation (the claim that served it last).
  `
  ALTER TABLE runs ADD COLUMN node_id TEXT;
  ALTER TABLE runs ADD COLUMN lease_until INTEGER;
  ALTER TABLE tenants ADD COLUMN served_seq INTEGER NOT NULL DEFAULT 0;
  `,
  // 4: per-tenant quotas and retention (JSON), the webhook signing secret, webhook deliveries;
  // runs by module (retention keeps modules a run references).
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
    next_at     INTEGER,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
  );
  CREATE INDEX webhook_deliveries_run ON webhook_deliveries (run_id, created_at);
  CREATE INDEX webhook_deliveries_state ON webhook_deliveries (state, next_at);
  CREATE INDEX runs_tenant_module ON runs (tenant_id, module_id);
  `,
  // 5: a webhook delivery is claimed like a run: the node making its attempt and until when
  // (a delivery whose node died is claimed again once that passed).
  `
  ALTER TABLE webhook_deliveries ADD COLUMN node_id TEXT;
  ALTER TABLE webhook_deliveries ADD COLUMN lease_until INTEGER;
  `,
  // 6: CPU ms per tenant per UTC day (`day`: the day's start, ms), added to by finishRun in its
  // transaction, so the CPU quota reads one row instead of summing the day's runs. No foreign key:
  // tenants are never deleted, and PostgreSQL's twin must not lock the tenant row on every finish.
  // The backfill takes yesterday and today (UTC, by the database's clock) from runs, so an upgrade
  // mid-day keeps the quota; older days no check reads.
  `
  CREATE TABLE tenant_cpu_days (
    tenant_id TEXT NOT NULL,
    day       INTEGER NOT NULL,
    cpu_ms    INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, day)
  ) WITHOUT ROWID;
  INSERT INTO tenant_cpu_days (tenant_id, day, cpu_ms)
    SELECT tenant_id, finished_at - finished_at % 86400000, sum(cpu_ms) FROM runs
    WHERE finished_at >= (CAST(strftime('%s', 'now') AS INTEGER) / 86400 - 1) * 86400000 AND cpu_ms > 0
    GROUP BY tenant_id, finished_at - finished_at % 86400000;
  `,
];
