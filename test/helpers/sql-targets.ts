/**
 * Throw-away databases for data connections to point at, with the same fixture on each: Postgres
 * (next to TEST_DATABASE_URL, when it is set), MariaDB/MySQL (next to TEST_MYSQL_URL, when it is
 * set) and SQLite files. A suite whose database is not configured says so (`NOT RUN`); under
 * `CI=true` a missing one fails instead (.ci/run sets both).
 */
import { Database } from 'bun:sqlite'
import { join } from 'node:path'
import mysql from 'mysql2/promise'
import postgres from 'postgres'
import { TEST_DATABASE_URL, withDatabase } from './db.ts'

export const TEST_MYSQL_URL = process.env.TEST_MYSQL_URL || undefined

export type TargetDriver = 'postgres' | 'mysql' | 'sqlite'

/** Whether the target databases of `driver` can be made here; prints why not once when they cannot. */
export function targetAvailable(driver: TargetDriver, suite: string): boolean {
  if (driver === 'sqlite') return true
  const variable = driver === 'postgres' ? 'TEST_DATABASE_URL' : 'TEST_MYSQL_URL'
  if ((driver === 'postgres' ? TEST_DATABASE_URL : TEST_MYSQL_URL) !== undefined) return true
  if (process.env.CI) throw new Error(`${suite}: ${variable} is not set (CI sets it: .ci/run)`)
  console.warn(`${suite}: NOT RUN against ${driver} — set ${variable} (e.g. ${driver === 'postgres' ? 'postgres://postgres@127.0.0.1:5432/postgres' : 'mysql://root@127.0.0.1:3306/test'})`)
  return false
}

/** The fixture every target holds; statements per dialect. */
export const ITEMS = [
  { id: 1, name: 'apple', price: '1.50', qty: 10, created_at: '2024-01-05T10:00:00' },
  { id: 2, name: 'banana', price: '0.25', qty: 9007199254740993n, created_at: '2024-02-01T00:00:00' },
  { id: 3, name: 'cherry', price: '12345678901234.56', qty: 3, created_at: '2024-03-15T23:59:59' },
]
export const BIG_ROWS = 2500

function fixture(driver: TargetDriver): string[] {
  const text = driver === 'mysql' ? 'VARCHAR(100)' : 'TEXT'
  const bytes = driver === 'postgres' ? 'BYTEA' : 'BLOB'
  const ts = driver === 'mysql' ? 'DATETIME' : 'TIMESTAMP'
  const hex = (h: string) => (driver === 'postgres' ? `'\\x${h}'::bytea` : `X'${h}'`)
  const q = (name: string) => (driver === 'mysql' ? `\`${name}\`` : `"${name}"`)
  // one multi-row INSERT: no recursion limits (MySQL's cte_max_recursion_depth is 1000)
  const big = [`INSERT INTO big VALUES ${Array.from({ length: BIG_ROWS }, (_, i) => `(${i + 1}, ${(i + 1) % 7})`).join(', ')}`]
  return [
    `CREATE TABLE items (id INTEGER PRIMARY KEY, name ${text} NOT NULL, price NUMERIC(16, 2), qty BIGINT, created_at ${ts}, data ${bytes}, note ${text})`,
    ...ITEMS.map((i) => `INSERT INTO items (id, name, price, qty, created_at, data) VALUES (${i.id}, '${i.name}', ${i.price}, ${i.qty}, '${i.created_at.replace('T', ' ')}', ${hex(i.id === 1 ? '00ff' : '01')})`),
    `CREATE TABLE orders (id INTEGER PRIMARY KEY, item_id INTEGER NOT NULL, amount INTEGER)`,
    `INSERT INTO orders VALUES (10, 1, 5), (11, 2, 7), (12, 1, 1)`,
    `CREATE TABLE big (id INTEGER PRIMARY KEY, bucket INTEGER)`,
    ...big,
    `CREATE TABLE ${q('Ürünler')} (${q('名前')} ${text}, ${q('fiyat')} INTEGER)`,
    `INSERT INTO ${q('Ürünler')} VALUES ('çay', 5), ('kahve', 8)`,
    `CREATE VIEW cheap AS SELECT id, name FROM items WHERE price < 2`,
  ]
}

/** A fingerprint of the fixture's data: equal before and after means nothing was changed. */
export const FINGERPRINT_SQL = `SELECT (SELECT count(*) FROM items) AS items, (SELECT sum(id) FROM items) AS ids, (SELECT count(*) FROM orders) AS orders, (SELECT count(*) FROM big) AS big, (SELECT min(name) FROM items) AS first, (SELECT count(*) FROM cheap) AS cheap`

export interface PgTarget {
  driver: 'postgres'
  host: string
  port: number
  database: string
  username: string
  /** a superuser session on the target database, for checks (pg_stat_activity, the fingerprint) */
  admin: postgres.Sql
  fingerprint(): Promise<string>
  drop(): Promise<void>
}

let counter = 0
const uniqueName = (prefix: string) => `${prefix}_${process.pid}_${Date.now().toString(36)}_${counter++}`

export async function createPgTarget(extra: string[] = []): Promise<PgTarget> {
  if (!TEST_DATABASE_URL) throw new Error('Postgres targets need TEST_DATABASE_URL')
  const name = uniqueName('hearth_target')
  const root = postgres(TEST_DATABASE_URL, { max: 1, onnotice: () => {} })
  try {
    await root.unsafe(`CREATE DATABASE "${name}"`)
  } finally {
    await root.end()
  }
  const url = new URL(withDatabase(TEST_DATABASE_URL, name))
  const admin = postgres(url.toString(), { max: 2, onnotice: () => {} })
  for (const s of [...fixture('postgres'), ...extra]) await admin.unsafe(s)
  await admin.unsafe('ANALYZE')
  return {
    driver: 'postgres',
    host: url.hostname,
    port: Number(url.port || 5432),
    database: name,
    username: decodeURIComponent(url.username || 'postgres'),
    admin,
    fingerprint: async () => JSON.stringify(await admin.unsafe(FINGERPRINT_SQL)),
    async drop() {
      await admin.end()
      const r = postgres(TEST_DATABASE_URL!, { max: 1, onnotice: () => {} })
      try {
        await r.unsafe(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`)
      } finally {
        await r.end()
      }
    },
  }
}

export interface MysqlTarget {
  driver: 'mysql'
  host: string
  port: number
  database: string
  username: string
  password: string | null
  admin: mysql.Pool
  fingerprint(): Promise<string>
  drop(): Promise<void>
}

export async function createMysqlTarget(extra: string[] = []): Promise<MysqlTarget> {
  if (!TEST_MYSQL_URL) throw new Error('MySQL targets need TEST_MYSQL_URL')
  const url = new URL(TEST_MYSQL_URL)
  const name = uniqueName('hearth_target')
  const base = { host: url.hostname, port: Number(url.port || 3306), user: decodeURIComponent(url.username || 'root'), password: url.password ? decodeURIComponent(url.password) : undefined }
  const root = await mysql.createConnection(base)
  try {
    await root.query(`CREATE DATABASE \`${name}\` CHARACTER SET utf8mb4`)
  } finally {
    await root.end()
  }
  const admin = mysql.createPool({ ...base, database: name, connectionLimit: 2, supportBigNumbers: true, bigNumberStrings: true, dateStrings: true })
  for (const s of [...fixture('mysql'), ...extra]) await admin.query(s)
  await admin.query('ANALYZE TABLE items, orders, big')
  return {
    driver: 'mysql',
    host: base.host,
    port: base.port,
    database: name,
    username: base.user,
    password: base.password ?? null,
    admin,
    fingerprint: async () => JSON.stringify((await admin.query(FINGERPRINT_SQL))[0]),
    async drop() {
      await admin.query(`DROP DATABASE IF EXISTS \`${name}\``).catch(() => {})
      await admin.end()
    },
  }
}

/** A SQLite file with the fixture, in `dir`. */
export function createSqliteFile(dir: string, extra: string[] = [], name = 'fixture.sqlite'): { path: string; fingerprint(): string } {
  const path = join(dir, name)
  const db = new Database(path)
  for (const s of [...fixture('sqlite'), ...extra]) db.run(s)
  db.close()
  return {
    path,
    fingerprint() {
      const d = new Database(path, { readonly: true })
      try {
        return JSON.stringify(d.prepare(FINGERPRINT_SQL).all())
      } finally {
        d.close()
      }
    },
  }
}
