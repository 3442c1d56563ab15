/**
 * The SQLite drivers the store runs on, behind one small synchronous interface, so that the store's
 * SQL is written once:
 *   - better-sqlite3 (an optional dependency): Node's fastest; a legacy native addon, which Deno
 *     cannot load and which a library user who never runs the service does not compile;
 *   - node:sqlite (`DatabaseSync`): built into Deno 2 and Node 22.5+ (Node 20 has none).
 * `openSqlite` picks better-sqlite3 on Node when it loads, else node:sqlite; under Deno, node:sqlite.
 */
import { createRequire } from 'node:module';

export type SqliteDriverName = 'better-sqlite3' | 'node:sqlite';

/** A prepared statement; both drivers' statements have this shape. */
export interface SqlStatement<P extends unknown[], R> {
  // A number on both drivers as we open them (node:sqlite gives a bigint only with readBigInts).
  run(...params: P): { changes: number };
  get(...params: P): R | undefined;
  all(...params: P): R[];
}

/** One connection, whichever driver holds it. */
export interface SqlDatabase {
  readonly driver: SqliteDriverName;
  readonly open: boolean;
  prepare<P extends unknown[] = unknown[], R = unknown>(sql: string): SqlStatement<P, R>;
  exec(sql: string): void;
  /** `PRAGMA name`'s value (the first column of its first row). */
  pragma(name: string): unknown;
  /**
   * `fn` as one transaction: committed when it returns, rolled back when it throws. `immediate`
   * takes the write lock at BEGIN (two connections migrating at once then wait, not deadlock).
   */
  transaction<A extends unknown[], T>(fn: (...a: A) => T, mode?: 'deferred' | 'immediate'): (...a: A) => T;
  /** Idempotent. */
  close(): void;
}

/** A constraint a failed statement broke, whichever driver reported it. */
export type Constraint = 'unique' | 'primarykey' | 'foreignkey';

// SQLite's extended result codes (node:sqlite reports these in `errcode`; better-sqlite3 names them in `code`).
const CONSTRAINTS: Record<number, Constraint> = { 2067: 'unique', 1555: 'primarykey', 787: 'foreignkey' };
const CONSTRAINT_NAMES: Record<string, Constraint> = {
  SQLITE_CONSTRAINT_UNIQUE: 'unique', SQLITE_CONSTRAINT_PRIMARYKEY: 'primarykey', SQLITE_CONSTRAINT_FOREIGNKEY: 'foreignkey',
};

/** The constraint `e` (thrown by either driver) reports, if it is a constraint violation. */
export function constraintOf(e: unknown): Constraint | undefined {
  const { code, errcode } = (e ?? {}) as { code?: unknown; errcode?: unknown };
  if (typeof code === 'string' && code in CONSTRAINT_NAMES) return CONSTRAINT_NAMES[code];
  if (typeof errcode === 'number') return CONSTRAINTS[errcode];
  return undefined;
}

/** Thrown when no driver loads here; its message says what to install. */
export class NoSqliteDriverError extends Error {
  override readonly name = 'NoSqliteDriverError';
}

interface RawStatement { run(...p: unknown[]): { changes: number }; get(...p: unknown[]): unknown; all(...p: unknown[]): unknown[] }
interface RawDatabase { prepare(sql: string): RawStatement; exec(sql: string): unknown; close(): void }
type Opener = (path: string, readonly: boolean) => RawDatabase;

const isDeno = typeof (process.versions as Record<string, string | undefined>).deno === 'string';
const requireHere = createRequire(import.meta.url);
const openers = new Map<SqliteDriverName, Opener | Error>();

/** The driver's opener, or why it cannot load here (remembered: a load is tried once a process). */
function load(name: SqliteDriverName): Opener | Error {
  let o = openers.get(name);
  if (o) return o;
  try {
    if (name === 'better-sqlite3') {
      if (isDeno) throw new Error('Deno cannot load better-sqlite3 (a legacy native addon)');
      const Database = requireHere('better-sqlite3') as new (path: string, o?: { readonly?: boolean }) => RawDatabase;
      // The addon itself loads at the first open: an in-memory database tells a missing or
      // mismatched build apart from a problem with the caller's file.
      new Database(':memory:').close();
      o = (path, readonly) => new Database(path, { readonly });
    } else {
      const { DatabaseSync } = requireHere('node:sqlite') as { DatabaseSync: new (path: string, o?: { readOnly?: boolean }) => RawDatabase };
      o = (path, readonly) => new DatabaseSync(path, { readOnly: readonly });
    }
  } catch (e) {
    o = e as Error;
  }
  openers.set(name, o);
  return o;
}

/** Opens `path` on `driver`, or on the first driver that loads here (better-sqlite3, then node:sqlite). */
export function openSqlite(path: string, opts: { driver?: SqliteDriverName | undefined; readonly?: boolean } = {}): SqlDatabase {
  const names: SqliteDriverName[] = opts.driver ? [opts.driver] : ['better-sqlite3', 'node:sqlite'];
  const failures: string[] = [];
  for (const name of names) {
    const opener = load(name);
    if (opener instanceof Error) {
      failures.push(`${name}: ${opener.message.split('\n')[0]}`);
      continue;
    }
    return wrap(name, opener(path, opts.readonly ?? false));
  }
  throw new NoSqliteDriverError(
    'the service\'s store needs better-sqlite3 (an optional dependency: run "npm install better-sqlite3"; '
    + 'Node 20 builds it from source if no prebuilt binary fits) or node:sqlite (Node 22.5 or later, or Deno 2); '
    + `here: ${failures.join('; ')}`);
}

function wrap(driver: SqliteDriverName, raw: RawDatabase): SqlDatabase {
  let open = true;
  let depth = 0;
  const db: SqlDatabase = {
    driver,
    get open() {
      return open;
    },
    prepare: <P extends unknown[], R>(sql: string) => raw.prepare(sql) as unknown as SqlStatement<P, R>,
    exec: (sql) => {
      raw.exec(sql);
    },
    pragma: (name) => {
      const row = raw.prepare(`PRAGMA ${name}`).get() as Record<string, unknown> | undefined;
      return row === undefined ? undefined : Object.values(row)[0];
    },
    transaction: (fn, mode = 'deferred') => (...a) => {
      // A transaction called inside another is a savepoint of it (as better-sqlite3's own
      // transactions nest): the outer one decides the commit and already holds its lock.
      const level = depth;
      const sp = `capsa_tx_${level}`;
      raw.exec(level > 0 ? `SAVEPOINT ${sp}` : mode === 'immediate' ? 'BEGIN IMMEDIATE' : 'BEGIN');
      depth = level + 1;
      let result;
      try {
        result = fn(...a);
        raw.exec(level > 0 ? `RELEASE ${sp}` : 'COMMIT');
      } catch (e) {
        // SQLite may have rolled back already (a failed COMMIT, SQLITE_FULL): the error that counts is e.
        try {
          raw.exec(level > 0 ? `ROLLBACK TO ${sp}; RELEASE ${sp}` : 'ROLLBACK');
        } catch { /* no transaction left to roll back */ }
        throw e;
      } finally {
        depth = level;
      }
      return result;
    },
    close: () => {
      if (!open) return;
      open = false;
      raw.close();
    },
  };
  return db;
}
