/** @module createDb: Drizzle on bun:sqlite (default) or on Postgres through postgres-js. */
import { Database as SQLite } from 'bun:sqlite'
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { drizzle as drizzleSqlite } from 'drizzle-orm/bun-sqlite'
import { drizzle as drizzlePg, type PostgresJsDatabase } from 'drizzle-orm/postgres-js'
import postgres from 'postgres'
import * as pgSchema from './schema.pg.ts'
import * as sqliteSchema from './schema.sqlite.ts'

export type Dialect = 'sqlite' | 'postgres'
/**
 * Services are written once, against the Postgres types. On SQLite the same query builder calls run
 * on SQLite's tables: the two schema files are kept identical in shape by test/db/schema-parity.test.ts,
 * so each column maps to the same JavaScript type on both.
 */
export type Schema = typeof pgSchema
export type Db = PostgresJsDatabase<Schema>

export interface Database {
  dialect: Dialect
  db: Db
  t: Schema
  /** resolves when the database answers, rejects (within `timeoutMs`) when it does not */
  ping(timeoutMs?: number): Promise<void>
  close(): Promise<void>
  /** the driver's own client, for migrations and tests */
  client: { kind: 'sqlite'; sqlite: SQLite } | { kind: 'postgres'; sql: postgres.Sql }
}

export interface DbOptions {
  /** `postgres://…`; unset → SQLite at `<dataDir>/hearth.db` */
  url?: string
  dataDir: string
  /** SQLite file name inside dataDir (tests use ':memory:') */
  sqliteFile?: string
}

export function createDb(opts: DbOptions): Database {
  return opts.url ? createPostgres(opts.url) : createSqlite(opts)
}

function createSqlite(opts: DbOptions): Database {
  const file = opts.sqliteFile ?? 'hearth.db'
  let path = file
  if (file !== ':memory:') {
    mkdirSync(opts.dataDir, { recursive: true })
    path = join(opts.dataDir, file)
  }
  const sqlite = new SQLite(path, { create: true, strict: true })
  sqlite.run('PRAGMA journal_mode = WAL')
  sqlite.run('PRAGMA synchronous = NORMAL')
  sqlite.run('PRAGMA foreign_keys = ON')
  sqlite.run('PRAGMA busy_timeout = 5000')
  const db = drizzleSqlite({ client: sqlite, schema: sqliteSchema }) as unknown as Db
  return {
    dialect: 'sqlite',
    db,
    t: sqliteSchema as unknown as Schema,
    client: { kind: 'sqlite', sqlite },
    async ping() {
      sqlite.query('SELECT 1').get()
    },
    async close() {
      sqlite.close()
    },
  }
}

function createPostgres(url: string): Database {
  const sql = postgres(url, { max: 10, connect_timeout: 5, idle_timeout: 60, onnotice: () => {} })
  const db = drizzlePg({ client: sql, schema: pgSchema })
  return {
    dialect: 'postgres',
    db,
    t: pgSchema,
    client: { kind: 'postgres', sql },
    async ping(timeoutMs = 2000) {
      let timer: Timer | undefined
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`database did not answer within ${timeoutMs} ms`)), timeoutMs)
      })
      try {
        await Promise.race([sql`select 1`, timeout])
      } finally {
        clearTimeout(timer)
      }
    },
    async close() {
      await sql.end({ timeout: 5 })
    },
  }
}
