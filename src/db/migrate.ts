/**
 * @module Applies the embedded drizzle-kit migrations, idempotently. On Postgres an advisory
 * lock held for the migration transaction makes instances that start together take turns.
 */
import type { Database } from './index.ts'
import pgMigrations from './migrations/pg.ts'
import sqliteMigrations from './migrations/sqlite.ts'

export interface EmbeddedMigration {
  tag: string
  hash: string
  statements: string[]
}

export interface MigrationResult {
  applied: string[]
  /** tags already applied whose SQL has changed since (logged, never re-run) */
  changed: string[]
}

/** Arbitrary constant naming Hearth's migration lock among Postgres advisory locks. */
const PG_LOCK_KEY = 7_203_114_551

export async function migrate(database: Database): Promise<MigrationResult> {
  const { client } = database
  if (client.kind === 'sqlite') {
    const { sqlite } = client
    sqlite.run('CREATE TABLE IF NOT EXISTS hearth_migrations (tag TEXT PRIMARY KEY, hash TEXT NOT NULL, applied_at TEXT NOT NULL)')
    // IMMEDIATE takes the write lock first, so two processes on one file cannot both migrate.
    return sqlite
      .transaction(() => {
        const rows = sqlite.query<{ tag: string; hash: string }, []>('SELECT tag, hash FROM hearth_migrations').all()
        return applyMissing(sqliteMigrations, rows, (m) => {
          for (const statement of m.statements) sqlite.run(statement)
          sqlite.query('INSERT INTO hearth_migrations (tag, hash, applied_at) VALUES (?, ?, ?)').run(m.tag, m.hash, new Date().toISOString())
        })
      })
      .immediate()
  }
  const { sql } = client
  return sql.begin(async (tx) => {
    await tx`SELECT pg_advisory_xact_lock(${PG_LOCK_KEY})`
    await tx`CREATE TABLE IF NOT EXISTS hearth_migrations (tag text PRIMARY KEY, hash text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`
    const rows = await tx<{ tag: string; hash: string }[]>`SELECT tag, hash FROM hearth_migrations`
    const pending: EmbeddedMigration[] = []
    const result = applyMissing(pgMigrations, rows, (m) => pending.push(m))
    for (const m of pending) {
      for (const statement of m.statements) await tx.unsafe(statement)
      await tx`INSERT INTO hearth_migrations (tag, hash) VALUES (${m.tag}, ${m.hash})`
    }
    return result
  })
}

function applyMissing(
  migrations: EmbeddedMigration[],
  done: { tag: string; hash: string }[],
  apply: (m: EmbeddedMigration) => void,
): MigrationResult {
  const known = new Map(done.map((r) => [r.tag, r.hash]))
  const result: MigrationResult = { applied: [], changed: [] }
  for (const m of migrations) {
    const hash = known.get(m.tag)
    if (hash === undefined) {
      apply(m)
      result.applied.push(m.tag)
    } else if (hash !== m.hash) {
      result.changed.push(m.tag)
    }
  }
  return result
}
