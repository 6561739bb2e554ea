/**
 * Questions over SQL in chat (docs/api.md §19 "Questions in chat") and the `sql_query` built-in:
 * the schema part sent to the model (ranking, budget, enum values), SQL taken out of answers, and
 * end to end against real databases — an uploaded SQLite dataset and a throw-away Postgres
 * database — with the fake upstream answering given SQL (`fake:sequence`, test/fakes/llm.ts).
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { Database as SqliteFile } from 'bun:sqlite'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import postgres from 'postgres'
import type { DbSchema, SchemaTable } from '../src/modules/connections/types.ts'
import { chartHint, enumCandidates, enumValues, extractSql, rankTables, renderSchema, SCHEMA_BUDGET_CHARS, selectTables, stem, wordsOf } from '../src/modules/chat/sql-schema.ts'
import { resultForPrompt } from '../src/modules/chat/sql-turn.ts'
import { queryToolResult } from '../src/modules/tools/builtins/sql-query.ts'
import { startFakeLlm, type FakeLlm } from './fakes/llm.ts'
import { register, type Account } from './helpers/accounts.ts'
import { createSecondInstance, createTestApp, type TestApp } from './helpers/app.ts'
import { eachDialect } from './helpers/db.ts'
import { expectProblem } from './helpers/problems.ts'
import { scenarios, type ScenarioContext } from './helpers/scenarios.ts'
import { readEvents, textOf } from './helpers/sse.ts'
import { eventually } from './helpers/streams.ts'

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

// ---------------------------------------------------------------------------------------------
// End to end: chat runs over real databases

type Json = Record<string, any>

const PG_URL = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres'

const CUSTOMERS: [number, string, string][] = [
  [1, 'Ada', 'UK'],
  [2, 'Linus', 'FI'],
  [3, 'Grace', 'US'],
  [4, 'Yukihiro', 'JP'],
  [5, 'Barbara', 'US'],
]
/** id, customer_id, status, total, created_at */
const ORDERS: [number, number, string, number, string][] = Array.from({ length: 12 }, (_, i) => [i + 1, (i % 5) + 1, ['paid', 'pending', 'refunded'][i % 3]!, 10 * (i + 1), `2024-0${1 + (i % 6)}-1${i % 9}`])

const DDL = [
  'CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, country TEXT NOT NULL)',
  'CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL REFERENCES customers(id), status TEXT NOT NULL, total REAL NOT NULL, created_at TEXT NOT NULL)',
]

/** A SQLite file of the shop's tables (and `extraTables` filler tables of 20 columns). */
function shopFile(extraTables = 0): Uint8Array<ArrayBuffer> {
  const dir = mkdtempSync(join(tmpdir(), 'hearth-sql-'))
  const path = join(dir, 'shop.sqlite')
  const db = new SqliteFile(path, { create: true })
  for (const s of DDL) db.run(s)
  for (const c of CUSTOMERS) db.run('INSERT INTO customers VALUES (?, ?, ?)', c)
  for (const o of ORDERS) db.run('INSERT INTO orders VALUES (?, ?, ?, ?, ?)', o)
  for (let i = 0; i < extraTables; i++) db.run(`CREATE TABLE filler_${i} (id INTEGER PRIMARY KEY, ${Array.from({ length: 19 }, (_, j) => `field_${j} TEXT`).join(', ')})`)
  db.close()
  const bytes = new Uint8Array(readFileSync(path))
  rmSync(dir, { recursive: true, force: true })
  return bytes
}

/** told apart by letters, not digits (a number in a question counts for tables named with it) */
let nonce = 0
/**
 * A question whose SQL, chart word (for results of 2+ rows and columns: the `chart` prompt's call;
 * `none` names no type) and answer the fake model gives, in turn (each question its own sequence).
 */
const scripted = (text: string, ...answers: string[]) => `${text} FAKE_ANSWERS=${JSON.stringify([...answers.slice(0, -1), `${answers.at(-1)} (#${String(++nonce).replace(/\d/g, (d) => 'abcdefghij'[Number(d)]!)})`])}`

eachDialect('questions over SQL in chat', (dialect) => {
  let t: TestApp
  let fake: FakeLlm
  let server: ReturnType<typeof Bun.serve>
  let base: string
  let admin: Account
  let a: Account
  let other: Account
  let pgName: string
  /** the connections of `a` by target */
  const targets: Record<'sqlite' | 'postgres', string> = { sqlite: '', postgres: '' }
  let otherConnection: string
  let globalConnection: string

  const request = (method: string, path: string, token: string | undefined, body?: unknown) => t.request(method, `/api/v1${path}`, { token, body })

  async function upload(token: string, bytes: Uint8Array<ArrayBuffer>, name = 'shop.sqlite') {
    const form = new FormData()
    form.append('purpose', 'dataset')
    form.append('file', new Blob([bytes], { type: 'application/vnd.sqlite3' }), name)
    const res = await fetch(`${base}/files`, { method: 'POST', headers: { authorization: `Bearer ${token}` }, body: form })
    const json = (await res.json()) as Json
    expect({ status: res.status, json }).toMatchObject({ status: 201 })
    return json.id as string
  }
  async function connection(token: string, body: Json) {
    const res = await request('POST', '/connections', token, body)
    expect({ status: res.status, body: res.body }).toMatchObject({ status: 201 })
    return res.body.id as string
  }

  beforeAll(async () => {
    fake = await startFakeLlm()
    t = await createTestApp(dialect)
    server = Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: t.app.fetch, idleTimeout: 30 })
    base = `http://127.0.0.1:${server.port}/api/v1`
    admin = await register(t, 'admin')
    a = await register(t, 'asker')
    other = await register(t, 'other')
    const provider = await request('POST', '/providers', admin.access, { name: 'fake', type: 'openai_compatible', base_url: `${fake.url}/v1`, api_key: 'k', scope: 'global' })
    for (const [name, id] of [
      ['sql', 'fake:sequence'],
      ['sql-slow', 'fake:sequence,delay=120'],
      ['sql-tools', 'fake:tokens=2,calls=sql_query,args=query:SELECT count(*) AS n FROM orders'],
      ['sql-down', 'fake:fail=500'],
    ] as const)
      expect((await request('POST', '/models', admin.access, { provider_id: provider.body.id, name, model_id: id })).status).toBe(201)
    targets.sqlite = await connection(a.access, { name: 'shop', driver: 'sqlite', file_id: await upload(a.access, shopFile()), is_default: true })
    otherConnection = await connection(other.access, { name: 'theirs', driver: 'sqlite', file_id: await upload(other.access, shopFile()) })
    globalConnection = await connection(admin.access, { name: 'everyones', driver: 'sqlite', file_id: await upload(admin.access, shopFile()), scope: 'global' })
    // a throw-away Postgres database with the same tables
    pgName = `hearth_chatsql_${Date.now().toString(36)}_${dialect}`
    const pgServer = postgres(PG_URL, { max: 1, onnotice: () => {} })
    await pgServer.unsafe(`CREATE DATABASE ${pgName}`)
    await pgServer.end()
    const url = new URL(PG_URL)
    url.pathname = `/${pgName}`
    const pg = postgres(url.href, { max: 1, onnotice: () => {} })
    for (const s of DDL) await pg.unsafe(s.replace('REAL', 'NUMERIC(10,2)'))
    for (const c of CUSTOMERS) await pg`INSERT INTO customers VALUES (${c[0]}, ${c[1]}, ${c[2]})`
    for (const o of ORDERS) await pg`INSERT INTO orders VALUES (${o[0]}, ${o[1]}, ${o[2]}, ${o[3]}, ${o[4]})`
    await pg.end()
    targets.postgres = await connection(a.access, { name: 'shop-pg', driver: 'postgres', host: url.hostname, port: Number(url.port || 5432), database: pgName, username: decodeURIComponent(url.username || 'postgres'), ...(url.password ? { password: decodeURIComponent(url.password) } : {}) })
  }, 30_000)
  afterAll(async () => {
    server.stop(true)
    await t.close()
    await fake.stop()
    const pgServer = postgres(PG_URL, { max: 1, onnotice: () => {} })
    await pgServer.unsafe(`DROP DATABASE IF EXISTS ${pgName} WITH (FORCE)`).catch(() => {})
    await pgServer.end()
  })

  const conversation = async (connectionId: string | null, body: Json = {}, token = a.access) => {
    const res = await request('POST', '/conversations', token, { title: 'SQL', model_id: 'sql', connection_id: connectionId, ...body })
    expect({ status: res.status, body: res.body }).toMatchObject({ status: 201 })
    return res.body.id as string
  }
  const send = (conversationId: string, body: Json, token = a.access, headers: Record<string, string> = {}) =>
    fetch(`${base}/conversations/${conversationId}/messages`, { method: 'POST', headers: { authorization: `Bearer ${token}`, accept: 'text/event-stream', 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) })
  const get = async (conversationId: string) => (await request('GET', `/conversations/${conversationId}`, a.access)).body
  const names = (events: { event: string; data: any }[]) => events.map((e) => (e.event === 'progress' ? `progress:${e.data.stage}` : e.event))
  /** names with runs of deltas as one `delta…` */
  const shape = (events: { event: string; data: any }[]) => names(events).filter((n, i, all) => n !== 'delta' || all[i - 1] !== 'delta').map((n) => (n === 'delta' ? 'delta…' : n))
  /** the chat requests the fake received since `from`, as the texts of their messages */
  const upstream = (from: number) => fake.requests.slice(from).filter((r) => r.path === '/v1/chat/completions').map((r) => r.body as Json)
  const promptText = (body: Json) => (body.messages as Json[]).map((m) => (typeof m.content === 'string' ? m.content : JSON.stringify(m.content))).join('\n')

  for (const target of ['sqlite', 'postgres'] as const) {
    describe(`on ${target}`, () => {
      test('events in order: progress, result, visualization, the streamed answer, usage, done; the message keeps the SQL and the rows', async () => {
        const c = await conversation(targets[target])
        const from = fake.requests.length
        const sql = 'SELECT status, COUNT(*) AS orders FROM orders GROUP BY status ORDER BY status'
        const events = await readEvents(await send(c, { content: scripted('How many orders are there per status?', `\`\`\`sql\n${sql};\n\`\`\``, 'none', 'There are four of each.') }))
        expect(shape(events)).toEqual(['message.created', 'progress:analyzing', 'progress:generating_sql', 'progress:executing', 'result', 'visualization', 'delta…', 'usage', 'done'])
        expect(events.map((e) => e.id)).toEqual(events.map((_, i) => i + 1))
        const result = events.find((e) => e.event === 'result')!.data
        expect(result).toMatchObject({ sql, rows_count: 3, truncated: false })
        expect(result.columns.map((x: Json) => x.name)).toEqual(['status', 'orders'])
        expect(result.rows.map((r: unknown[]) => [r[0], Number(r[1])])).toEqual([['paid', 4], ['pending', 4], ['refunded', 4]])
        expect(events.find((e) => e.event === 'visualization')!.data.chart).toMatchObject({ type: 'pie', x: 'status', y: ['orders'] })
        expect(textOf(events)).toStartWith('There are four of each.')
        const done = events.at(-1)!.data
        expect(done).toMatchObject({ conversation_id: c, message_id: events[0]!.data.assistant_message_id, finish_reason: 'stop' })
        // three model calls: the SQL (with the schema and the question), the chart's word, the answer (with the result); usage adds them up
        const calls = upstream(from)
        expect(calls).toHaveLength(3)
        expect(promptText(calls[0]!)).toContain('CREATE TABLE orders (')
        expect(promptText(calls[0]!)).toContain('How many orders are there per status?')
        expect(promptText(calls[1]!)).toContain('Choose the chart')
        expect(promptText(calls[2]!)).toContain('refunded')
        const usage = events.find((e) => e.event === 'usage')!.data
        expect(usage.input_tokens).toBeGreaterThan(0)
        // a usage row per model call (written in batches)
        await eventually(async () => (await t.deps.database.db.select().from(t.deps.database.t.usage)).filter((r) => r.model === 'sql' && r.userId === a.id).length >= 3, 3000, 'three usage rows')
        const answer = (await get(c)).messages.at(-1)
        expect(answer).toMatchObject({ id: done.message_id, role: 'assistant', status: 'complete', content: textOf(events) })
        expect(answer.metadata).toMatchObject({ connection_id: targets[target], sql, rows_count: 3, visualization: { type: 'pie' }, input_tokens: usage.input_tokens, output_tokens: usage.output_tokens, finish_reason: 'stop' })
        expect(answer.metadata.execution_time).toBeNumber()
        expect(answer.metadata.rows).toHaveLength(3)
      })

      test('self-correction: a statement the database fails goes back with its message (retrying), the second one answers', async () => {
        const c = await conversation(targets[target])
        const from = fake.requests.length
        const events = await readEvents(await send(c, { content: scripted('How many orders?', 'SELECT count(*) AS n FROM no_such_table', 'SELECT count(*) AS n FROM orders', 'Twelve.') }))
        expect(shape(events)).toEqual(['message.created', 'progress:analyzing', 'progress:generating_sql', 'progress:executing', 'progress:retrying', 'progress:generating_sql', 'progress:executing', 'result', 'visualization', 'delta…', 'usage', 'done'])
        const retrying = events.find((e) => e.data?.stage === 'retrying')!.data.message as string
        expect(retrying).toContain('no_such_table')
        expect(events.find((e) => e.event === 'result')!.data).toMatchObject({ sql: 'SELECT count(*) AS n FROM orders', rows_count: 1 })
        expect(events.find((e) => e.event === 'visualization')!.data.chart.type).toBe('number')
        // the correction call carries the failed statement and the database's message
        const calls = upstream(from)
        expect(calls).toHaveLength(3)
        expect(promptText(calls[1]!)).toContain(retrying)
        expect(promptText(calls[1]!)).toContain('no_such_table')
        const answer = (await get(c)).messages.at(-1)
        expect(answer.metadata).toMatchObject({ sql: 'SELECT count(*) AS n FROM orders', sql_attempts: [{ sql: 'SELECT count(*) AS n FROM no_such_table', error: retrying }] })
      })
    })
  }

  test('refused three times (writes, a second statement): two corrections, then error and done error; nothing changed; the message says what happened', async () => {
    const c = await conversation(targets.sqlite)
    const events = await readEvents(await send(c, { content: scripted('Clean up the orders', 'DELETE FROM orders', 'SELECT 1; DROP TABLE orders', "UPDATE orders SET total = 0", 'never') }))
    expect(shape(events)).toEqual([
      'message.created',
      'progress:analyzing',
      ...['progress:generating_sql', 'progress:executing', 'progress:retrying', 'progress:generating_sql', 'progress:executing', 'progress:retrying', 'progress:generating_sql', 'progress:executing'],
      'usage',
      'error',
      'done',
    ])
    expect(events.filter((e) => e.data?.stage === 'retrying')).toHaveLength(2)
    expect(events.at(-2)!.data.code).toBe('UPSTREAM_ERROR')
    expect(events.at(-1)!.data.finish_reason).toBe('error')
    const count = await request('POST', `/connections/${targets.sqlite}/query`, a.access, { sql: 'SELECT count(*) AS n, sum(total) AS s FROM orders' })
    expect(count.body.rows[0].map(Number)).toEqual([12, 780])
    const answer = (await get(c)).messages.at(-1)
    expect(answer.status).toBe('error')
    expect(answer.metadata.sql_attempts.map((x: Json) => x.sql)).toEqual(['DELETE FROM orders', 'SELECT 1; DROP TABLE orders', 'UPDATE orders SET total = 0'])
    expect(answer.metadata.error).toContain('3 attempts')
    // the JSON send: 502, both messages stored
    const json = await request('POST', `/conversations/${c}/messages`, a.access, { content: scripted('Again', 'DELETE FROM orders', 'never') })
    expectProblem(json, 502, 'UPSTREAM_ERROR')
    expect((await get(c)).messages.at(-1).status).toBe('error')
  })

  test.each([
    // (on Postgres: a SQLite date is TEXT, which the charts module does not take for time)
    ['line: a time column and numbers', 'SELECT created_at::date AS day, SUM(total) AS revenue FROM orders GROUP BY 1 ORDER BY 1', ['none'], 'line'],
    ['bar: categories and averages', 'SELECT status, AVG(total) AS avg_total FROM orders GROUP BY status', ['none'], 'bar'],
    ['pie: parts of a whole', 'SELECT status, COUNT(*) AS n FROM orders GROUP BY status', ['none'], 'pie'],
    ['number: one value (no chart call)', 'SELECT SUM(total) AS revenue FROM orders', [], 'number'],
    ["the chart prompt's word", 'SELECT status, COUNT(*) AS n FROM orders GROUP BY status', ['bar'], 'bar'],
    ['a `-- chart:` line in the SQL (no chart call)', '-- chart: bar\nSELECT status, COUNT(*) AS n FROM orders GROUP BY status', [], 'bar'],
    ['table: no visualization', 'SELECT name, country FROM customers', ['none'], null],
  ] as const)('charts reach visualization — %s', async (name, sql, chartWord, type) => {
    const c = await conversation(name.startsWith('line') ? targets.postgres : targets.sqlite)
    const events = await readEvents(await send(c, { content: scripted('Show me', `\`\`\`sql\n${sql}\n\`\`\``, ...chartWord, 'Here.') }))
    const viz = events.find((e) => e.event === 'visualization')
    const answer = (await get(c)).messages.at(-1)
    if (type === null) {
      expect(viz).toBeUndefined()
      expect(answer.metadata.visualization).toBeNull()
    } else {
      expect(viz!.data.chart).toMatchObject({ type, vega_lite: { $schema: expect.stringContaining('vega-lite/v5') } })
      expect(answer.metadata.visualization.type).toBe(type)
    }
  })

  test("the user's own sql_generation and sql_answer prompts reach the model, with their variables filled in", async () => {
    const put = await request('PUT', '/prompts', a.access, { sql_generation: 'MY-GEN for {{dialect}}: {{question}}\n{{schema}}', sql_answer: 'MY-ANSWER in {{language}}: {{question}} / {{sql}} / {{rows_count}}\n{{result}}' })
    expect(put.status).toBe(200)
    try {
      const c = await conversation(targets.sqlite)
      const from = fake.requests.length
      await readEvents(await send(c, { content: scripted('Count customers', 'SELECT count(*) AS n FROM customers', 'Five.') }))
      const [gen, ans] = upstream(from)
      expect(upstream(from)).toHaveLength(2)
      expect(promptText(gen!)).toStartWith('MY-GEN for SQLite: Count customers')
      expect(promptText(gen!)).toContain('CREATE TABLE customers (')
      expect(ans!.messages.map((m: Json) => m.role)).toEqual(['system', 'user'])
      expect(ans!.messages[0].content).toBe('Answer in English.')
      expect(ans!.messages[1].content).toStartWith('MY-ANSWER in English: Count customers')
      expect(promptText(ans!)).toContain('/ SELECT count(*) AS n FROM customers / 1')
    } finally {
      await request('POST', '/prompts/reset', a.access, {})
    }
  })

  test('language: the chat stream’s `language`, else the preference, reaches the answer call', async () => {
    const from = fake.requests.length
    const query = scripted('每个状态有多少订单？', 'SELECT status, COUNT(*) AS n FROM orders GROUP BY status', 'none', '每种四个。')
    const res = await fetch(`${base}/chat/stream?query=${encodeURIComponent(query)}&model=sql&connection_id=${targets.sqlite}&language=zh`, { headers: { cookie: `hearth_access=${a.access}`, 'sec-fetch-site': 'same-origin' } })
    expect(res.status).toBe(200)
    const events = await readEvents(res)
    expect(shape(events)).toContain('result')
    const created = (await get(events[0]!.data.conversation_id))
    expect(created.connection_id).toBe(targets.sqlite)
    const answerCall = upstream(from).find((b) => JSON.stringify(b).includes('Answer in Chinese.'))
    expect(answerCall).toBeDefined()
    // the preference, on a send
    expect((await request('PUT', '/users/me/preferences', a.access, { language: 'zh' })).status).toBe(200)
    try {
      const c = await conversation(targets.sqlite)
      const before = fake.requests.length
      await readEvents(await send(c, { content: scripted('Orders?', 'SELECT count(*) AS n FROM orders', 'Twelve.') }))
      expect(JSON.stringify(upstream(before).at(-1))).toContain('Answer in Chinese.')
    } finally {
      await request('PUT', '/users/me/preferences', a.access, { language: 'en' })
    }
  })

  test('a 500-table dataset and a question naming two tables: only those two are sent', async () => {
    const id = await connection(a.access, { name: 'warehouse', driver: 'sqlite', file_id: await upload(a.access, shopFile(498), 'warehouse.sqlite') })
    const c = await conversation(id)
    const from = fake.requests.length
    await readEvents(await send(c, { content: scripted('Total of the orders per customer country', 'SELECT c.country, SUM(o.total) AS total FROM orders o JOIN customers c ON c.id = o.customer_id GROUP BY c.country', 'none', 'Done.') }))
    const prompt = promptText(upstream(from)[0]!)
    expect(prompt).toContain('CREATE TABLE orders (')
    expect(prompt).toContain('CREATE TABLE customers (')
    expect(prompt).not.toContain('filler_')
    expect(prompt).toContain('2 of the 500 tables')
  }, 30_000)

  test('stop mid-answer: the answer so far is kept, stopped, with its SQL and rows', async () => {
    const c = await conversation(targets.sqlite, { model_id: 'sql-slow' })
    const res = await send(c, { content: scripted('Orders per status', 'SELECT status, COUNT(*) AS n FROM orders GROUP BY status', 'none', 'one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen') })
    let stopped = false
    const events = await readEvents(res, (e) => {
      if (e.event === 'delta' && !stopped) {
        stopped = true
        void request('POST', `/conversations/${c}/stop`, a.access)
      }
      return false
    })
    expect(events.at(-1)!.data.finish_reason).toBe('stopped')
    const answer = (await get(c)).messages.at(-1)
    expect(answer.status).toBe('stopped')
    expect(answer.metadata).toMatchObject({ sql: 'SELECT status, COUNT(*) AS n FROM orders GROUP BY status', rows_count: 3, finish_reason: 'stopped' })
    expect(answer.content.length).toBeLessThan('one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen'.length)
  })

  test('stop while the SQL is written: stopped, nothing run', async () => {
    const c = await conversation(targets.sqlite, { model_id: 'sql-slow' })
    const events = await readEvents(await send(c, { content: scripted('Orders', 'SELECT count(*) FROM orders', 'x') }), (e) => {
      if (e.data?.stage === 'generating_sql') void request('POST', `/conversations/${c}/stop`, a.access)
      return false
    })
    expect(shape(events)).toEqual(['message.created', 'progress:analyzing', 'progress:generating_sql', 'usage', 'done'].filter((n) => n !== 'usage' || events.some((e) => e.event === 'usage')))
    expect(events.at(-1)!.data.finish_reason).toBe('stopped')
    expect((await get(c)).messages.at(-1)).toMatchObject({ status: 'stopped', content: '' })
  })

  test('stop while the query runs: it is cancelled, the answer is stopped with its SQL, no error', async () => {
    const c = await conversation(targets.sqlite)
    const slow = 'WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 500000000) SELECT count(*) AS n FROM n'
    const started = performance.now()
    const events = await readEvents(await send(c, { content: scripted('Count to a lot', slow, 'never') }), (e) => {
      if (e.data?.stage === 'executing') void request('POST', `/conversations/${c}/stop`, a.access)
      return false
    })
    expect(performance.now() - started).toBeLessThan(5_000)
    expect(shape(events).filter((n) => n !== 'usage')).toEqual(['message.created', 'progress:analyzing', 'progress:generating_sql', 'progress:executing', 'done'])
    expect(events.at(-1)!.data.finish_reason).toBe('stopped')
    expect((await get(c)).messages.at(-1)).toMatchObject({ status: 'stopped', content: '', metadata: { sql: slow, rows_count: null } })
  })

  test('an untitled conversation is titled by its first exchange, before done', async () => {
    const c = await conversation(targets.sqlite, { title: null })
    const events = await readEvents(await send(c, { content: scripted('How many customers?', 'SELECT count(*) AS n FROM customers', 'Five.', 'Customer count') }))
    expect(shape(events).slice(-3)).toEqual(['usage', 'title', 'done'])
    expect((await get(c)).title).toStartWith('Customer count')
  })

  test('re-attach with Last-Event-ID: the events after it, exactly once, then the live ones', async () => {
    const c = await conversation(targets.sqlite, { model_id: 'sql-slow' })
    const first = await readEvents(await send(c, { content: scripted('Customers per country', 'SELECT country, COUNT(*) AS n FROM customers GROUP BY country', 'none', 'Two in the US, one elsewhere.') }), (e) => e.event === 'result')
    const last = first.at(-1)!.id!
    const again = await readEvents(await fetch(`${base}/conversations/${c}/stream`, { headers: { authorization: `Bearer ${a.access}`, 'last-event-id': String(last) } }))
    expect(again[0]!.id).toBe(last + 1)
    expect(shape(again)).toEqual(['visualization', 'delta…', 'usage', 'done'])
    // the whole log, from the start
    const all = await readEvents(await fetch(`${base}/conversations/${c}/stream`, { headers: { authorization: `Bearer ${a.access}` } }))
    expect(shape(all)).toEqual(['message.created', 'progress:analyzing', 'progress:generating_sql', 'progress:executing', 'result', 'visualization', 'delta…', 'usage', 'done'])
  })

  if (dialect === 'postgres')
    test('two instances: re-attach on the other one after `result` (its rows relayed), then stop from it', async () => {
      const second = await createSecondInstance(t)
      const server2 = Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: second.app.fetch, idleTimeout: 30 })
      try {
        const c = await conversation(targets.sqlite, { model_id: 'sql-slow' })
        const words = Array.from({ length: 40 }, (_, i) => `w${i}`).join(' ')
        const first = await readEvents(await send(c, { content: scripted('All the orders', 'SELECT * FROM orders ORDER BY id', 'none', words) }), (e) => e.event === 'result')
        const res = await fetch(`http://127.0.0.1:${server2.port}/api/v1/conversations/${c}/stream`, { headers: { authorization: `Bearer ${a.access}`, 'last-event-id': String(first.at(-1)!.id) } })
        expect(res.status).toBe(200)
        let stopped = false
        const rest = await readEvents(res, (e) => {
          if (e.event === 'delta' && !stopped) {
            stopped = true
            void second.request('POST', `/api/v1/conversations/${c}/stop`, { token: a.access })
          }
          return false
        })
        const all = [...first, ...rest]
        expect(all.map((e) => e.id)).toEqual(all.map((_, i) => i + 1))
        expect(first.at(-1)!.data.rows).toHaveLength(12)
        expect(rest.at(-1)!.data.finish_reason).toBe('stopped')
        // the whole log, read from the other instance, holds the result with its rows
        const replay = await readEvents(await fetch(`http://127.0.0.1:${server2.port}/api/v1/conversations/${c}/stream`, { headers: { authorization: `Bearer ${a.access}` } }))
        expect(replay.find((e) => e.event === 'result')!.data.rows).toEqual(first.at(-1)!.data.rows)
      } finally {
        server2.stop(true)
        await second.close()
      }
    }, 20_000)

  test('regenerate: a sibling answer from a new SQL, the branch on it', async () => {
    const c = await conversation(targets.sqlite)
    const question = scripted('The number, please', 'SELECT 1 AS n', 'first', 'SELECT 2 AS n', 'second')
    const first = await readEvents(await send(c, { content: question }))
    const firstId = first.at(-1)!.data.message_id
    const res = await fetch(`${base}/conversations/${c}/messages/${firstId}/regenerate`, { method: 'POST', headers: { authorization: `Bearer ${a.access}`, accept: 'text/event-stream', 'content-type': 'application/json' }, body: '{}' })
    const events = await readEvents(res)
    expect(shape(events)).toEqual(['message.created', 'progress:analyzing', 'progress:generating_sql', 'progress:executing', 'result', 'visualization', 'delta…', 'usage', 'done'])
    expect(events.find((e) => e.event === 'result')!.data.sql).toBe('SELECT 2 AS n')
    const conv = await get(c)
    expect(conv.messages).toHaveLength(2)
    expect(conv.messages[1]).toMatchObject({ id: events.at(-1)!.data.message_id, parent_id: conv.messages[0].id, metadata: { sql: 'SELECT 2 AS n' } })
    expect(conv.messages[1].content).toStartWith('second')
    expect(conv.message_count).toBe(3)
  })

  test('a follow-up question is sent the earlier question with its SQL ({{history}})', async () => {
    const c = await conversation(targets.sqlite)
    await readEvents(await send(c, { content: scripted('Orders per status', 'SELECT status, COUNT(*) AS n FROM orders GROUP BY status', 'none', 'Four each.') }))
    const from = fake.requests.length
    await readEvents(await send(c, { content: scripted('And their totals?', 'SELECT status, SUM(total) AS total FROM orders GROUP BY status', 'none', 'Here.') }))
    const gen = upstream(from)[0]!
    expect(gen.messages).toHaveLength(1)
    expect(gen.messages[0].content).toContain('Earlier in this conversation:\nQuestion: Orders per status')
    expect(gen.messages[0].content).toContain('SQL: SELECT status, COUNT(*) AS n FROM orders GROUP BY status')
    expect(gen.messages[0].content.indexOf('Earlier in this conversation')).toBeLessThan(gen.messages[0].content.indexOf('And their totals?'))
  })

  test('the JSON send: 201 with the answer and its metadata', async () => {
    const c = await conversation(targets.sqlite)
    const res = await request('POST', `/conversations/${c}/messages`, a.access, { content: scripted('How many customers?', 'SELECT count(*) AS n FROM customers', 'Five.') })
    expect(res.status).toBe(201)
    expect(res.body.assistant_message).toMatchObject({ status: 'complete', metadata: { sql: 'SELECT count(*) AS n FROM customers', rows_count: 1, rows: [[5]], visualization: { type: 'number' } } })
    expect(res.body.assistant_message.content).toStartWith('Five.')
  })

  test('a database that cannot be reached: error at once (no corrections), never a 5xx', async () => {
    const down = await connection(a.access, { name: 'down', driver: 'postgres', host: '127.0.0.1', port: 1, database: 'x', username: 'x' })
    const c = await conversation(down)
    const events = await readEvents(await send(c, { content: scripted('Anything', 'SELECT 1', 'x') }))
    expect(shape(events)).toEqual(['message.created', 'progress:analyzing', 'error', 'done'])
    expect(events.at(-2)!.data.code).toBe('UPSTREAM_ERROR')
    expect((await get(c)).messages.at(-1).status).toBe('error')
  })

  test('the model failing: error, done error', async () => {
    const c = await conversation(targets.sqlite, { model_id: 'sql-down' })
    const events = await readEvents(await send(c, { content: 'Anything' }))
    expect(shape(events)).toEqual(['message.created', 'progress:analyzing', 'progress:generating_sql', 'error', 'done'])
    expect(events.at(-1)!.data.finish_reason).toBe('error')
  })

  describe('who may name a connection', () => {
    const ctx = (): ScenarioContext => ({ t, tokens: { user: a.access, other: other.access, admin: admin.access } })
    const noConnectionField = (res: { body: Json }) => expect(res.body.errors).toEqual([{ path: 'connection_id', message: 'unknown connection' }])
    scenarios(ctx, [
      { name: 'a conversation on one’s own connection', as: 'user', method: 'POST', path: '/api/v1/conversations', body: () => ({ connection_id: targets.sqlite }), status: 201, check: (res) => expect(res.body.connection_id).toBe(targets.sqlite) },
      { name: 'another user’s connection', as: 'other', method: 'POST', path: '/api/v1/conversations', body: () => ({ connection_id: targets.sqlite }), status: 422, code: 'VALIDATION_ERROR', check: noConnectionField },
      { name: 'a user’s personal connection, for admins too', as: 'admin', method: 'POST', path: '/api/v1/conversations', body: () => ({ connection_id: targets.sqlite }), status: 422, code: 'VALIDATION_ERROR', check: noConnectionField },
      { name: 'no credentials', as: 'guest', method: 'POST', path: '/api/v1/conversations', body: () => ({ connection_id: targets.sqlite }), status: 401, code: 'UNAUTHORIZED' },
      { name: 'a global connection, by a user', as: 'other', method: 'POST', path: '/api/v1/conversations', body: () => ({ connection_id: globalConnection }), status: 201 },
      { name: 'a global connection, by its admin', as: 'admin', method: 'POST', path: '/api/v1/conversations', body: () => ({ connection_id: globalConnection }), status: 201 },
      { name: 'sql_query on one’s own connection', as: 'user', method: 'POST', path: '/api/v1/tools/call', body: () => ({ tool: 'sql_query', arguments: { connection_id: targets.sqlite, query: 'SELECT count(*) AS n FROM orders' } }), status: 200, check: (res) => expect(res.body.is_error).toBe(false) },
      { name: 'sql_query on another user’s connection', as: 'other', method: 'POST', path: '/api/v1/tools/call', body: () => ({ tool: 'sql_query', arguments: { connection_id: targets.sqlite, query: 'SELECT 1' } }), status: 404, code: 'NOT_FOUND' },
      { name: 'sql_query on a user’s connection, for admins too', as: 'admin', method: 'POST', path: '/api/v1/tools/call', body: () => ({ tool: 'sql_query', arguments: { connection_id: targets.sqlite, query: 'SELECT 1' } }), status: 404, code: 'NOT_FOUND' },
      { name: 'sql_query on a global connection', as: 'other', method: 'POST', path: '/api/v1/tools/call', body: () => ({ tool: 'sql_query', arguments: { connection_id: globalConnection, query: 'SELECT count(*) AS n FROM customers' } }), status: 200, check: (res) => expect(res.body.result.structured_content.rows).toEqual([[5]]) },
      { name: 'sql_query without credentials', as: 'guest', method: 'POST', path: '/api/v1/tools/call', body: () => ({ tool: 'sql_query', arguments: { connection_id: targets.sqlite, query: 'SELECT 1' } }), status: 401, code: 'UNAUTHORIZED' },
    ])

    test('create, PATCH, send and the chat stream: another user’s or an unknown connection is 422 naming connection_id, nothing stored; a guest is 401', async () => {
      for (const id of [otherConnection, 'no-such-connection']) {
        const created = await request('POST', '/conversations', a.access, { connection_id: id })
        expectProblem(created, 422, 'VALIDATION_ERROR')
        expect(created.body.errors).toEqual([{ path: 'connection_id', message: 'unknown connection' }])
        const c = await conversation(null)
        const patched = await request('PATCH', `/conversations/${c}`, a.access, { connection_id: id, title: 'never' })
        expect([patched.status, patched.body.errors?.[0]?.path]).toEqual([422, 'connection_id'])
        const sent = await request('POST', `/conversations/${c}/messages`, a.access, { content: 'hi', connection_id: id })
        expect([sent.status, sent.body.errors?.[0]?.path]).toEqual([422, 'connection_id'])
        const conv = await get(c)
        expect(conv).toMatchObject({ connection_id: null, title: 'SQL', message_count: 0 })
        const stream = await fetch(`${base}/chat/stream?query=hi&connection_id=${id}`, { headers: { cookie: `hearth_access=${a.access}`, 'sec-fetch-site': 'same-origin' } })
        expect(stream.status).toBe(422)
      }
      expectProblem(await request('POST', '/conversations', undefined, { connection_id: targets.sqlite }), 401)
      const guestStream = await fetch(`${base}/chat/stream?query=hi&connection_id=${targets.sqlite}`)
      expect(guestStream.status).toBe(401)
    })

    test('the connection set on a send stays the conversation’s; null makes it a plain chat again', async () => {
      const c = await conversation(null)
      await readEvents(await send(c, { content: scripted('Count', 'SELECT count(*) AS n FROM orders', 'Twelve.'), connection_id: targets.sqlite }))
      expect((await get(c)).connection_id).toBe(targets.sqlite)
      const patched = await request('PATCH', `/conversations/${c}`, a.access, { connection_id: null })
      expect(patched.body.connection_id).toBeNull()
      const plain = await readEvents(await send(c, { content: 'Just chat', model_id: 'sql-tools' }))
      expect(shape(plain)).not.toContain('result')
    })

    test('a question with commas in the chat stream and a search with commas are text, not lists', async () => {
      const query = scripted('Orders, per status, please', 'SELECT status, COUNT(*) AS n FROM orders GROUP BY status', 'none', 'Four, each.')
      const res = await fetch(`${base}/chat/stream?query=${encodeURIComponent(query)}&model=sql&connection_id=${targets.sqlite}`, { headers: { cookie: `hearth_access=${a.access}`, 'sec-fetch-site': 'same-origin' } })
      expect(res.status).toBe(200)
      const events = await readEvents(res)
      expect(events[0]!.data.user_message.content).toBe(query)
      const found = await request('GET', `/conversations?q=${encodeURIComponent('Orders, per status')}`, a.access)
      expect(found.status).toBe(200)
      expect(found.body.items.map((x: Json) => x.id)).toContain(events[0]!.data.conversation_id)
    })

    test('a deleted connection leaves its conversations plain chats', async () => {
      const id = await connection(a.access, { name: 'short-lived', driver: 'sqlite', file_id: await upload(a.access, shopFile()) })
      const c = await conversation(id)
      expect((await request('DELETE', `/connections/${id}`, a.access)).status).toBe(204)
      expect((await get(c)).connection_id).toBeNull()
      const plain = await readEvents(await send(c, { content: 'Hello', model_id: 'sql-tools' }))
      expect(shape(plain)).toEqual(['message.created', 'delta…', 'usage', 'done'])
    })

    test('a global connection answers everyone’s questions', async () => {
      const c = await conversation(globalConnection, {}, other.access)
      const events = await readEvents(await send(c, { content: scripted('Count', 'SELECT count(*) AS n FROM customers', 'Five.') }, other.access))
      expect(events.find((e) => e.event === 'result')!.data.rows).toEqual([[5]])
    })
  })

  describe('the sql_query tool', () => {
    const call = (args: Json, token = a.access) => request('POST', '/tools/call', token, { tool: 'sql_query', arguments: args })

    test('POST /tools/call: rows as text and structured content; refused or failing SQL is is_error; another user’s connection 404; guest 401', async () => {
      const ok = await call({ connection_id: targets.sqlite, query: 'SELECT status, COUNT(*) AS n FROM orders GROUP BY status ORDER BY status' })
      expect(ok.status).toBe(200)
      expect(ok.body.is_error).toBe(false)
      expect(ok.body.result.content[0].text).toBe('3 rows in ' + ok.body.result.structured_content.duration_ms + ' ms\ncolumns: ["status","n"]\n["paid",4]\n["pending",4]\n["refunded",4]')
      expect(ok.body.result.structured_content).toMatchObject({ rows_count: 3, truncated: false, rows: [['paid', 4], ['pending', 4], ['refunded', 4]] })
      const pg = await call({ connection_id: targets.postgres, query: 'SELECT count(*) AS n FROM customers' })
      expect([pg.status, pg.body.is_error]).toEqual([200, false])
      const limited = await call({ connection_id: targets.sqlite, query: 'SELECT id FROM orders ORDER BY id', limit: 2 })
      expect(limited.body.result.structured_content).toMatchObject({ rows: [[1], [2]], truncated: true })
      for (const query of ['DELETE FROM orders', 'SELECT * FROM nowhere', 'SELECT 1; SELECT 2']) {
        const bad = await call({ connection_id: targets.sqlite, query })
        expect([bad.status, bad.body.is_error]).toEqual([200, true])
        expect(bad.body.result.content[0].text).toStartWith('The query failed: ')
      }
      expectProblem(await call({ connection_id: otherConnection, query: 'SELECT 1' }), 404, 'NOT_FOUND')
      expectProblem(await request('POST', '/tools/call', undefined, { tool: 'sql_query', arguments: { connection_id: targets.sqlite, query: 'SELECT 1' } }), 401)
      // by name: the caller's own (another user's name finds nothing)
      const byName = await call({ connection: 'SHOP', query: 'SELECT count(*) AS n FROM customers' })
      expect([byName.status, byName.body.result?.structured_content?.rows]).toEqual([200, [[5]]])
      expectProblem(await call({ connection: 'theirs', query: 'SELECT 1' }), 404, 'NOT_FOUND')
      // without connection_id: the caller's default connection; none → 422
      const byDefault = await call({ query: 'SELECT count(*) AS n FROM orders' })
      expect(byDefault.body.result.structured_content.rows).toEqual([[12]])
      const none = await call({ query: 'SELECT 1' }, other.access)
      expectProblem(none, 422, 'VALIDATION_ERROR')
      expect(none.body.errors[0].path).toBe('arguments.connection_id')
      expect((await request('GET', `/connections/${targets.sqlite}/query`, a.access)).status).not.toBe(500)
    })

    test('in a chat tool loop: the model calls sql_query, its rows come back as the tool result', async () => {
      const c = await conversation(null, { model_id: 'sql-tools', tools: ['sql_query'] })
      const events = await readEvents(await send(c, { content: 'How many orders?' }))
      expect(names(events)).toEqual(['message.created', 'tool_call', 'tool_result', 'delta', 'delta', 'usage', 'done'])
      const result = events.find((e) => e.event === 'tool_result')!.data
      expect(result).toMatchObject({ name: 'sql_query', is_error: false })
      expect(result.result.content[0].text).toContain('[12]')
      const logs = await request('GET', '/tools/logs?tool=sql_query&source=chat', a.access)
      expect(logs.body.items[0]).toMatchObject({ tool: 'sql_query', is_error: false, conversation_id: c })
    })
  })
})
