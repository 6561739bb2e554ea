import { afterAll, describe, expect, test } from 'bun:test'
import { join } from 'node:path'
import { getTableConfig as pgConfig, PgTable } from 'drizzle-orm/pg-core'
import { getTableConfig as sqliteConfig, SQLiteTable } from 'drizzle-orm/sqlite-core'
import { is } from 'drizzle-orm'
import { readMigrations, renderModule } from '../../scripts/embed-migrations.ts'
import { createDb } from '../../src/db/index.ts'
import { migrate } from '../../src/db/migrate.ts'
import pgMigrations from '../../src/db/migrations/pg.ts'
import sqliteMigrations from '../../src/db/migrations/sqlite.ts'
import * as pgSchema from '../../src/db/schema.pg.ts'
import * as sqliteSchema from '../../src/db/schema.sqlite.ts'
import { createEmptyTestDatabase, eachDialect, type TestDatabase } from '../helpers/db.ts'

const root = join(import.meta.dir, '../..')

describe('embedded migrations', () => {
  test('match drizzle-kit output (run `npm run db:generate` after changing a schema)', () => {
    expect(sqliteMigrations).toEqual(readMigrations(join(root, 'drizzle/sqlite')))
    expect(pgMigrations).toEqual(readMigrations(join(root, 'drizzle/pg')))
    expect(renderModule(sqliteMigrations)).toBe(renderModule(readMigrations(join(root, 'drizzle/sqlite'))))
  })
  test('both dialects have the same migration history', () => {
    expect(sqliteMigrations.map((m) => m.tag)).toEqual(pgMigrations.map((m) => m.tag))
  })
})

eachDialect('migrate', (dialect) => {
  const created: TestDatabase[] = []
  afterAll(async () => {
    for (const d of created) await d.drop()
  })
  const fresh = async () => {
    const d = await createEmptyTestDatabase(dialect)
    created.push(d)
    return d
  }

  test('applies every migration once, then nothing', async () => {
    const { database } = await fresh()
    const first = await migrate(database)
    expect(first.applied).toEqual(sqliteMigrations.map((m) => m.tag))
    const second = await migrate(database)
    expect(second).toEqual({ applied: [], changed: [] })
  })

  test('the migrated database has exactly the columns the schema declares', async () => {
    const { database } = await fresh()
    await migrate(database)
    const tables = database.dialect === 'sqlite'
      ? Object.values(sqliteSchema).filter((v) => is(v, SQLiteTable)).map((t) => sqliteConfig(t as SQLiteTable))
      : Object.values(pgSchema).filter((v) => is(v, PgTable)).map((t) => pgConfig(t as PgTable))
    for (const table of tables) {
      const actual = await columnsOf(database, table.name)
      const expected = table.columns.map((c) => ({ name: c.name, notNull: c.notNull || c.primary })).sort((a, b) => a.name.localeCompare(b.name))
      expect({ table: table.name, columns: actual }).toEqual({ table: table.name, columns: expected })
      const indexes = await indexesOf(database, table.name)
      for (const index of table.indexes) expect(indexes).toContain(index.config.name!)
    }
  })

  test('instances migrating at the same time do not collide', async () => {
    const { database, url, dataDir } = await fresh()
    const others = [1, 2, 3].map(() => createDb({ url, dataDir }))
    try {
      const results = await Promise.all([database, ...others].map((d) => migrate(d)))
      const applied = results.flatMap((r) => r.applied)
      expect(applied).toEqual(sqliteMigrations.map((m) => m.tag))
    } finally {
      for (const o of others) await o.close()
    }
  })
})

async function columnsOf(database: ReturnType<typeof createDb>, table: string) {
  const c = database.client
  const rows = c.kind === 'sqlite'
    ? c.sqlite.query<{ name: string; notnull: number; pk: number }, [string]>('SELECT name, "notnull", pk FROM pragma_table_info(?)').all(table).map((r) => ({ name: r.name, notNull: r.notnull === 1 || r.pk > 0 }))
    : (await c.sql<{ name: string; nullable: string }[]>`SELECT column_name AS name, is_nullable AS nullable FROM information_schema.columns WHERE table_schema = 'public' AND table_name = ${table}`).map((r) => ({ name: r.name, notNull: r.nullable === 'NO' }))
  return rows.sort((a, b) => a.name.localeCompare(b.name))
}

async function indexesOf(database: ReturnType<typeof createDb>, table: string): Promise<string[]> {
  const c = database.client
  if (c.kind === 'sqlite') return c.sqlite.query<{ name: string }, [string]>('SELECT name FROM pragma_index_list(?)').all(table).map((r) => r.name)
  return (await c.sql<{ name: string }[]>`SELECT indexname AS name FROM pg_indexes WHERE tablename = ${table}`).map((r) => r.name)
}
