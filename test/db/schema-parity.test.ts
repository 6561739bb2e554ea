/** The two dialect schemas must describe the same tables, so one service code path serves both. */
import { describe, expect, test } from 'bun:test'
import { getTableConfig as pgConfig, PgTable } from 'drizzle-orm/pg-core'
import { getTableConfig as sqliteConfig, SQLiteTable } from 'drizzle-orm/sqlite-core'
import { is, SQL } from 'drizzle-orm'
import * as pg from '../../src/db/schema.pg.ts'
import * as sqlite from '../../src/db/schema.sqlite.ts'

/** Column type by kind: what JavaScript value it holds, not how the dialect spells it. */
function kind(columnType: string, dataType: string): string {
  const map: Record<string, string> = {
    PgText: 'text', SQLiteText: 'text', PgVarchar: 'text',
    PgTimestamp: 'timestamp', SQLiteTimestamp: 'timestamp',
    PgBoolean: 'boolean', SQLiteBoolean: 'boolean',
    PgInteger: 'integer', SQLiteInteger: 'integer', PgBigInt53: 'integer',
    PgDoublePrecision: 'number', SQLiteReal: 'number', PgReal: 'number',
    PgJsonb: 'json', SQLiteTextJson: 'json',
  }
  return map[columnType] ?? `${columnType}(${dataType})`
}

function describeTable(config: ReturnType<typeof pgConfig> | ReturnType<typeof sqliteConfig>) {
  const exprText = (e: unknown) => {
    if (is(e, SQL)) return e.queryChunks.map((c) => ('name' in (c as object) ? (c as { name: string }).name : 'value' in (c as object) ? (c as { value: string[] }).value.join('') : '')).join('')
    return (e as { name: string }).name
  }
  return {
    name: config.name,
    columns: config.columns
      .map((c) => ({ name: c.name, kind: kind(c.columnType, c.dataType), notNull: c.notNull, primary: c.primary, default: c.default === undefined ? undefined : String(c.default), enum: c.enumValues ?? null }))
      .sort((a, b) => a.name.localeCompare(b.name)),
    indexes: config.indexes
      .map((i) => ({ name: i.config.name, unique: i.config.unique, on: i.config.columns.map(exprText) }))
      .sort((a, b) => String(a.name).localeCompare(String(b.name))),
    foreignKeys: config.foreignKeys
      .map((fk) => {
        const r = fk.reference()
        return { columns: r.columns.map((c) => c.name), foreignColumns: r.foreignColumns.map((c) => c.name), onDelete: fk.onDelete ?? 'no action' }
      })
      .sort((a, b) => a.columns.join().localeCompare(b.columns.join())),
    primaryKeys: config.primaryKeys.map((pk) => pk.columns.map((c) => c.name)),
    uniques: config.uniqueConstraints.map((u) => u.columns.map((c) => c.name)),
  }
}

const pgTables = Object.fromEntries(Object.entries(pg).filter(([, v]) => is(v, PgTable)).map(([k, v]) => [k, describeTable(pgConfig(v as PgTable))]))
const sqliteTables = Object.fromEntries(Object.entries(sqlite).filter(([, v]) => is(v, SQLiteTable)).map(([k, v]) => [k, describeTable(sqliteConfig(v as SQLiteTable))]))

describe('schema parity', () => {
  test('both dialects export the same tables', () => {
    expect(Object.keys(sqliteTables).sort()).toEqual(Object.keys(pgTables).sort())
    expect(Object.keys(pgTables).length).toBeGreaterThan(0)
  })
  for (const name of Object.keys(pgTables)) {
    test(`table ${name} matches: columns, kinds, nullability, defaults, indexes, foreign keys`, () => {
      expect(sqliteTables[name]).toEqual(pgTables[name]!)
    })
  }
  test('every column kind is known (no silent dialect-specific type)', () => {
    for (const t of [...Object.values(pgTables), ...Object.values(sqliteTables)]) for (const c of t.columns) expect(c.kind).not.toContain('(')
  })
})
