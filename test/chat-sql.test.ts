/**
 * Questions over SQL in chat (docs/api.md §19 "Questions in chat") and the `sql_query` built-in:
 * the schema part sent to the model (ranking, budget, enum values), SQL taken out of answers, and
 * end to end against real databases — an uploaded SQLite dataset and a throw-away Postgres
 * database — with the fake upstream answering given SQL (`fake:sequence`, test/fakes/llm.ts).
 */
import { describe, expect, test } from 'bun:test'
import type { DbSchema, SchemaTable } from '../src/modules/connections/types.ts'
import { chartHint, enumCandidates, enumValues, extractSql, rankTables, renderSchema, SCHEMA_BUDGET_CHARS, selectTables, stem, wordsOf } from '../src/modules/chat/sql-schema.ts'
import { resultForPrompt } from '../src/modules/chat/sql-turn.ts'
import { queryToolResult } from '../src/modules/tools/builtins/sql-query.ts'

const col = (name: string, type = 'INTEGER', extra: Partial<SchemaTable['columns'][number]> = {}) => ({ name, type, nullable: true, primary: false, ...extra })
const table = (name: string, columns: SchemaTable['columns'], row_count: number | null = 10): SchemaTable => ({ name, columns, row_count })

/** 500 tables of 20 columns, named like a real warehouse's, among them `customers` and `orders`. */
function bigSchema(): DbSchema {
  const words = ['ledger', 'stock', 'audit', 'shipment', 'invoice_line', 'payroll', 'vendor', 'asset', 'campaign', 'ticket']
  const tables: SchemaTable[] = []
  for (let i = 0; i < 498; i++) {
    const base = `${words[i % words.length]}_${i}`
    tables.push(table(base, [col('id', 'INTEGER', { primary: true }), ...Array.from({ length: 19 }, (_, j) => col(`${words[(i + j) % words.length]}_field_${j}`, j % 3 ? 'TEXT' : 'NUMERIC'))]))
  }
  tables.splice(137, 0, table('customers', [col('id', 'INTEGER', { primary: true }), col('name', 'TEXT'), col('country', 'TEXT'), ...Array.from({ length: 17 }, (_, j) => col(`attr_${j}`, 'TEXT'))]))
  tables.splice(402, 0, table('orders', [col('id', 'INTEGER', { primary: true }), col('customer_id'), col('status', 'TEXT'), col('total', 'REAL'), ...Array.from({ length: 16 }, (_, j) => col(`extra_${j}`, 'TEXT'))]))
  return { tables, fetched_at: new Date().toISOString() }
}

describe('the schema part of the prompt', () => {
  test('words: snake_case, camelCase and plurals come to one form; function words are left out', () => {
    expect(wordsOf('OrderItems of the customer_addresses')).toEqual(['order', 'item', 'customer', 'address'])
    expect(['categories', 'boxes', 'orders', 'status', 'analysis', 'bus'].map(stem)).toEqual(['category', 'box', 'order', 'status', 'analysis', 'bus'])
    expect(wordsOf('How many orders did each customer place in 2024?')).toEqual(['order', 'customer', 'place', '2024'])
  })

  test('a 500-table database and a question naming two tables: the two (and only they) are in the schema part, far below the budget', () => {
    const schema = bigSchema()
    const started = performance.now()
    const ranked = rankTables(schema, 'What is the total of the orders per customer?')
    const chosen = selectTables(ranked, 'sqlite', SCHEMA_BUDGET_CHARS)
    const part = renderSchema(chosen, 'sqlite', new Map(), schema.tables.length)
    const ms = performance.now() - started
    expect(part.tables.sort()).toEqual(['customers', 'orders'])
    expect(part.text).toContain('CREATE TABLE orders (')
    expect(part.text).toContain('-- 2 of the 500 tables')
    expect(part.text.length).toBeLessThan(2_000)
    expect(ms).toBeLessThan(500)
    // the whole schema would be far over the budget
    expect(renderSchema(schema.tables, 'sqlite', new Map(), 500, Infinity).text.length).toBeGreaterThan(20 * SCHEMA_BUDGET_CHARS)
  })

  test('a question naming no table: the first tables up to the budget, never more', () => {
    const schema = bigSchema()
    const chosen = selectTables(rankTables(schema, 'hello there'), 'sqlite', SCHEMA_BUDGET_CHARS)
    const part = renderSchema(chosen, 'sqlite', new Map(), 500)
    expect(part.tables.length).toBeGreaterThan(5)
    expect(part.tables.length).toBeLessThan(60)
    expect(part.text.length).toBeLessThanOrEqual(SCHEMA_BUDGET_CHARS + 200)
  })

  test('a small schema goes whole, most related first; a table referenced by a <name>_id column follows the one that names it', () => {
    const schema: DbSchema = {
      fetched_at: '',
      tables: [table('products', [col('id'), col('title', 'TEXT')]), table('order_items', [col('order_id'), col('product_id'), col('quantity')]), table('customers', [col('id'), col('name', 'TEXT')]), table('orders', [col('id'), col('customer_id')])],
    }
    const ranked = rankTables(schema, 'Which customers bought the most?')
    // orders has a customer_id column: it relates to the question too
    expect(ranked.map((r) => r.table.name)).toEqual(['customers', 'orders', 'products', 'order_items'])
    const ranked2 = rankTables(schema, 'quantity per product')
    expect(ranked2.map((r) => [r.table.name, r.score > 0, r.linked])).toEqual([
      ['products', true, false],
      ['order_items', true, false],
      ['orders', false, true],
      ['customers', false, false],
    ])
    expect(selectTables(ranked, 'sqlite', SCHEMA_BUDGET_CHARS)).toHaveLength(4)
  })

  test('a table named inside a sentence without spaces (Chinese) is found', () => {
    const schema: DbSchema = { fetched_at: '', tables: [table('sales', [col('id')]), table('employees', [col('id')])] }
    expect(rankTables(schema, '每个部门的employees有多少人？')[0]!.table.name).toBe('employees')
  })

  test('enum values: text columns with few short values are listed; free text, ids and secrets never asked for', () => {
    const t = table('users', [col('id', 'INTEGER', { primary: true }), col('status', 'VARCHAR(20)'), col('email', 'TEXT'), col('password_hash', 'TEXT'), col('country', 'TEXT'), col('nickname', 'TEXT'), col('age')])
    expect(enumCandidates([t]).map((c) => c.column.name)).toEqual(['status', 'country', 'nickname'])
    expect(enumValues(['a', 'b', null])).toEqual(['a', 'b'])
    expect(enumValues(Array.from({ length: 11 }, (_, i) => `v${i}`))).toBeNull()
    expect(enumValues(['x'.repeat(41)])).toBeNull()
    const part = renderSchema([t], 'postgres', new Map([['users\u0000status', ['active', "it's"]]]), 1)
    expect(part.text).toContain("status VARCHAR(20), -- values: 'active', 'it''s'")
    expect(part.text).toContain('id INTEGER PRIMARY KEY,')
  })

  test('names that need it are quoted as the dialect quotes them', () => {
    const t = { ...table('Order Lines', [col('naïve col', 'TEXT')]), schema: 'sales' }
    expect(renderSchema([t], 'postgres', new Map(), 1).text).toContain('CREATE TABLE sales."Order Lines" (')
    expect(renderSchema([t], 'mysql', new Map(), 1).text).toContain('`naïve col` TEXT')
  })

  test('a single table wider than the budget is cut to its first columns, saying how many are left', () => {
    const wide = table('wide', Array.from({ length: 2000 }, (_, i) => col(`column_number_${i}`)))
    const part = renderSchema(selectTables(rankTables({ tables: [wide, table('other', [col('x')])], fetched_at: '' }, 'wide'), 'sqlite', 3000), 'sqlite', new Map(), 2, 3000)
    expect(part.tables).toEqual(['wide'])
    expect(part.text.length).toBeLessThan(3200)
    expect(part.text).toMatch(/-- … \d+ more columns/)
  })
})

describe('SQL out of an answer', () => {
  test.each([
    ['a sql fence', 'Here you go:\n```sql\nSELECT 1;\n```\nThat counts.', 'SELECT 1'],
    ['a bare fence', '```\nSELECT a FROM t\n```', 'SELECT a FROM t'],
    ['an unclosed fence', '```sql\nSELECT a\nFROM t', 'SELECT a\nFROM t'],
    ['plain SQL', 'SELECT count(*) FROM orders;', 'SELECT count(*) FROM orders'],
    ['a line after words', 'The query:\nWITH x AS (SELECT 1) SELECT * FROM x', 'WITH x AS (SELECT 1) SELECT * FROM x'],
    ['reasoning first', '<think>maybe SELECT 2</think>```sql\nSELECT 3\n```', 'SELECT 3'],
    ['a chart hint line', '```sql\n-- chart: bar\nSELECT a, b FROM t\n```', 'SELECT a, b FROM t'],
  ])('%s', (_name, answer, sql) => {
    expect(extractSql(answer)).toBe(sql)
  })

  test('nothing left is undefined; chart hints are read', () => {
    expect(extractSql('```sql\n\n```')).toBeUndefined()
    expect(chartHint('```sql\n-- chart: Pie\nSELECT 1\n```')).toBe('pie')
    expect(chartHint('SELECT 1')).toBeUndefined()
  })
})

describe('results as text', () => {
  const result = (n: number, truncated = false) => ({ columns: [{ name: 'id', type: 'INTEGER' }, { name: 'note', type: 'TEXT' }], rows: Array.from({ length: n }, (_, i) => [i, `n|${i}\nx`]), rows_count: n, truncated, duration_ms: 3 })

  test('the answer prompt gets the first 50 rows, saying how many were left out', () => {
    const text = resultForPrompt(result(120, true))
    expect(text.split('\n')[0]).toBe('id | note')
    expect(text).toContain('0 | n 0 x')
    expect(text).toContain('(50 of more than 120 rows shown)')
  })

  test('sql_query: a summary, the columns and one JSON row a line, bounded', () => {
    const small = queryToolResult(result(2))
    expect((small.content[0] as { text: string }).text).toBe('2 rows in 3 ms\ncolumns: ["id","note"]\n[0,"n|0\\nx"]\n[1,"n|1\\nx"]')
    expect(small.structuredContent).toEqual({ columns: result(2).columns, rows: result(2).rows, rows_count: 2, truncated: false, duration_ms: 3 })
    const big = queryToolResult({ ...result(0), rows: Array.from({ length: 5000 }, (_, i) => [i, 'x'.repeat(50)]), rows_count: 5000 })
    const text = (big.content[0] as { text: string }).text
    expect(text.length).toBeLessThanOrEqual(16_000)
    expect(text).toMatch(/\[\d+ more rows not shown\]$/)
  })
})
