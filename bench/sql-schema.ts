/**
 * @module `npm run bench:sql-schema`: the schema part a question over SQL sends the model
 * (src/modules/chat/sql-schema.ts), for a database of 500 tables × 20 columns, against the whole
 * schema rendered the same way (the baseline: what sending everything would be), in one run. Per
 * question: the tables and characters sent (about 4 a token), their share of the whole, and the time
 * of ranking, choosing and rendering (p50, p99 of BENCH_SQL_SCHEMA_CALLS calls after a warm-up). Reading
 * the schema from the database is `bench/sql.ts`'s part 2; enum values (one query each, cached) are
 * left out here.
 *
 * Goal: a question naming two tables sends those two and not all 500 (far under the 12,000-character
 * budget). Exit code: 0 whatever the goal says; 1 when the part misses a named table (the ranking is
 * wrong); 2 for a bad setting. See bench/README.md.
 */
import { cpus } from 'node:os'
import type { DbSchema, SchemaTable } from '../src/modules/connections/types.ts'
import { rankTables, renderSchema, SCHEMA_BUDGET_CHARS, selectTables } from '../src/modules/chat/sql-schema.ts'
import { envInteger, formatMs, renderTable, runAsScript, samplePercentile } from './lib.ts'

const TABLES = 500
const COLUMNS = 20
const NOUNS = ['invoice', 'payment', 'shipment', 'vendor', 'asset', 'campaign', 'ticket', 'employee', 'warehouse', 'supplier', 'contract', 'budget', 'region', 'device', 'session', 'review', 'coupon', 'refund', 'ledger', 'account', 'branch', 'course', 'lesson', 'project']
const QUALIFIERS = ['daily', 'archive', 'staging', 'legacy', 'audit', 'summary', 'detail', 'history', 'pending', 'raw', 'clean', 'monthly', 'external', 'internal', 'shadow', 'backup', 'temp', 'snapshot', 'mirror', 'draft', 'import']
const FIELDS = ['amount', 'quantity', 'code', 'label', 'rate', 'score', 'weight', 'level', 'priority', 'state', 'kind', 'note', 'opened', 'closed', 'updated', 'owner', 'source', 'target', 'value', 'flag', 'comment', 'version', 'batch', 'channel']

/** 500 tables of 20 columns with names like a real warehouse's, `customers` and `orders` among them. */
function warehouse(): DbSchema {
  const tables: SchemaTable[] = []
  for (let i = 0; tables.length < TABLES - 2; i++) {
    const name = `${QUALIFIERS[i % QUALIFIERS.length]}_${NOUNS[Math.floor(i / QUALIFIERS.length) % NOUNS.length]}${i >= QUALIFIERS.length * NOUNS.length ? `_${i}` : ''}`
    const columns = [{ name: 'id', type: 'bigint', nullable: false, primary: true }]
    for (let j = 1; j < COLUMNS; j++) columns.push({ name: `${FIELDS[(i + j * 7) % FIELDS.length]}_${j}`, type: j % 3 ? 'text' : 'numeric(12,2)', nullable: j % 2 === 0, primary: false })
    tables.push({ name, columns, row_count: 1000 + i })
  }
  const col = (name: string, type: string) => ({ name, type, nullable: false, primary: name === 'id' })
  tables.splice(131, 0, { name: 'customers', columns: [col('id', 'bigint'), col('name', 'text'), col('country', 'text'), ...Array.from({ length: COLUMNS - 3 }, (_, j) => col(`attribute_${j}`, 'text'))], row_count: 52_000 })
  tables.splice(377, 0, { name: 'orders', columns: [col('id', 'bigint'), col('customer_id', 'bigint'), col('status', 'text'), col('total', 'numeric(12,2)'), ...Array.from({ length: COLUMNS - 4 }, (_, j) => col(`detail_${j}`, 'text'))], row_count: 1_250_000 })
  return { tables, fetched_at: new Date().toISOString() }
}

const QUESTIONS: [string, string, string[]][] = [
  ['names two tables', 'What is the total of the orders per customer country last year?', ['customers', 'orders']],
  ['a word 21 tables share', 'Which payments have the highest amount?', []],
  ['names no table', 'How are we doing?', []],
]

async function main(): Promise<number> {
  const calls = envInteger('BENCH_SQL_SCHEMA_CALLS', 300, 10, 100_000)
  if (calls instanceof Error) {
    process.stderr.write(`${calls.message}\n`)
    return 2
  }
  const schema = warehouse()
  const p = (xs: number[], q: number) => samplePercentile(xs, q)!
  const time = (f: () => unknown) => {
    for (let i = 0; i < 20; i++) f()
    const xs: number[] = []
    for (let i = 0; i < calls; i++) {
      const t0 = performance.now()
      f()
      xs.push(performance.now() - t0)
    }
    return xs
  }
  const whole = () => renderSchema(schema.tables, 'postgres', new Map(), schema.tables.length, Infinity)
  const wholeText = whole().text
  const wholeTimes = time(whole)
  const cells: string[][] = [['(baseline) the whole schema', String(TABLES), wholeText.length.toLocaleString('en-US'), Math.ceil(wholeText.length / 4).toLocaleString('en-US'), '1.000', formatMs(p(wholeTimes, 50)), formatMs(p(wholeTimes, 99))]]
  let failed = false
  let twoTables = { tables: 0, chars: 0 }
  for (const [name, question, named] of QUESTIONS) {
    const part = () => renderSchema(selectTables(rankTables(schema, question), 'postgres', SCHEMA_BUDGET_CHARS), 'postgres', new Map(), schema.tables.length)
    const result = part()
    const times = time(part)
    for (const t of named) if (!result.tables.includes(t)) (failed = true), process.stderr.write(`bench sql-schema: "${question}" left out ${t}\n`)
    if (named.length === 2) twoTables = { tables: result.tables.length, chars: result.text.length }
    cells.push([name, String(result.tables.length), result.text.length.toLocaleString('en-US'), Math.ceil(result.text.length / 4).toLocaleString('en-US'), (result.text.length / wholeText.length).toFixed(3), formatMs(p(times, 50)), formatMs(p(times, 99))])
  }
  console.log(`${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, bun ${Bun.version}, ${TABLES} tables × ${COLUMNS} columns, budget ${SCHEMA_BUDGET_CHARS.toLocaleString('en-US')} characters, ${calls} calls per row`)
  console.log(renderTable(['question', 'tables sent', 'characters', '≈ tokens', 'vs whole', 'p50 ms', 'p99 ms'], cells, new Set([1, 2, 3, 4, 5, 6])))
  const met = twoTables.tables === 2 && twoTables.chars < SCHEMA_BUDGET_CHARS
  console.log(`goal: a question naming two tables sends those two, not all ${TABLES}: ${met ? 'met' : 'NOT met'} (${twoTables.tables} tables, ${twoTables.chars.toLocaleString('en-US')} characters)`)
  return failed ? 1 : 0
}

if (import.meta.main) await runAsScript('bench sql-schema', main)
