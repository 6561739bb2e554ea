/**
 * @module `npm run bench:sql-vet`: what layer one of read-only SQL (src/modules/connections/vet.ts)
 * costs per statement, against node-sql-parser alone parsing the same text, in one run. For each
 * dialect and statement: the parser alone (the baseline: what any parse-based check pays), vetSql on
 * new text (each call a different statement, so nothing is remembered: the lexer, the parse, the
 * tree walk) and vetSql on the same text again (the verdict remembered). BENCH_SQL_VET_CALLS calls per
 * row (default 2000) after a warm-up, interleaved so a noisy moment hits every row.
 *
 * Prints one table and the goal line: a point select's fresh check ≤ 1 ms p50 (half of the 2 ms that
 * `POST /connections/{id}/query` may add to the driver's own time). Exit code: 0 whatever the goal
 * says; 1 when a statement was refused (the harness is wrong); 2 for a bad setting. See bench/README.md.
 */
import { cpus } from 'node:os'
import { Parser as MySqlParser } from 'node-sql-parser/build/mysql'
import { Parser as PostgresParser } from 'node-sql-parser/build/postgresql'
import { Parser as SqliteParser } from 'node-sql-parser/build/sqlite'
import { vetSql } from '../src/modules/connections/vet.ts'
import type { Driver } from '../src/modules/connections/types.ts'
import { envInteger, formatMs, renderTable, runAsScript, samplePercentile } from './lib.ts'

const STATEMENTS: [string, string][] = [
  ['point select', 'SELECT id, name, total FROM orders WHERE id = 42'],
  ['join + group', "SELECT c.name, count(o.id) AS n, sum(o.total) AS revenue FROM customers c LEFT JOIN orders o ON o.customer_id = c.id WHERE o.created_at > '2024-01-01' GROUP BY c.name HAVING count(o.id) > 2 ORDER BY n DESC LIMIT 10"],
  ['CTE + window', 'WITH m AS (SELECT customer_id, sum(total) AS s FROM orders GROUP BY customer_id) SELECT customer_id, s, rank() OVER (ORDER BY s DESC) AS r FROM m WHERE s > 100'],
]
type Grammar = [{ astify(sql: string, opt: { database: string }): unknown }, string]
const postgresql: Grammar = [new PostgresParser(), 'postgresql']
/** the grammars vetSql tries, in its order (SQLite's lacks window frames: Postgres' comes second) */
const DRIVERS: [Driver, Grammar[]][] = [
  ['postgres', [postgresql]],
  ['mysql', [[new MySqlParser(), 'mysql']]],
  ['sqlite', [[new SqliteParser(), 'sqlite'], postgresql]],
]

/** The baseline: the grammars alone, as vetSql tries them. */
function parseOnly(grammars: Grammar[], sql: string) {
  for (const [parser, database] of grammars) {
    try {
      return parser.astify(sql, { database })
    } catch {}
  }
  throw new Error(`no grammar reads: ${sql}`)
}
const GOAL_POINT_SELECT_P50_MS = 1

async function main(): Promise<number> {
  const calls = envInteger('BENCH_SQL_VET_CALLS', 2000, 100, 1_000_000)
  if (calls instanceof Error) {
    process.stderr.write(`${calls.message}\n`)
    return 2
  }
  const cells: string[][] = []
  let pointP50 = 0
  let n = 0
  for (const [driver, grammars] of DRIVERS) {
    for (const [name, sql] of STATEMENTS) {
      // each fresh call gets its own text (a different alias), so no verdict is remembered
      const fresh = () => `${sql.replace('SELECT ', `SELECT ${n++} AS k, `)}`
      for (let i = 0; i < 200; i++) {
        parseOnly(grammars, fresh())
        vetSql(fresh(), driver)
      }
      const times = { parse: [] as number[], fresh: [] as number[], again: [] as number[] }
      for (let i = 0; i < calls; i++) {
        const a = fresh()
        let t0 = performance.now()
        parseOnly(grammars, a)
        times.parse.push(performance.now() - t0)
        const b = fresh()
        t0 = performance.now()
        const verdict = vetSql(b, driver)
        times.fresh.push(performance.now() - t0)
        if (!verdict.ok) {
          process.stderr.write(`bench sql-vet: ${driver} ${name} was refused: ${verdict.reason}\n`)
          return 1
        }
        t0 = performance.now()
        vetSql(sql, driver)
        times.again.push(performance.now() - t0)
      }
      const p = (xs: number[], q: number) => samplePercentile(xs, q)!
      const base = p(times.parse, 50)
      if (driver === 'postgres' && name === 'point select') pointP50 = p(times.fresh, 50)
      cells.push([driver, name, formatMs(base), formatMs(p(times.fresh, 50)), `${(p(times.fresh, 50) / base).toFixed(2)}x`, formatMs(p(times.fresh, 99)), formatMs(p(times.again, 50)), formatMs(p(times.again, 99))])
    }
  }
  console.log(`${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, bun ${Bun.version}, ${calls} calls per row`)
  console.log(renderTable(['driver', 'statement', 'parse only p50 ms', 'vetSql new p50 ms', 'vs parse', 'vetSql new p99 ms', 'vetSql again p50 ms', 'again p99 ms'], cells, new Set([2, 3, 4, 5, 6, 7])))
  const worst = Math.max(...cells.filter((c) => c[1] === 'point select').map((c) => Number(c[3])))
  console.log(`goal: a point select's fresh check ≤ ${GOAL_POINT_SELECT_P50_MS} ms p50 on every driver: ${worst <= GOAL_POINT_SELECT_P50_MS ? 'met' : 'NOT met'} (worst ${formatMs(worst)} ms; Postgres ${formatMs(pointP50)} ms)`)
  return 0
}

if (import.meta.main) await runAsScript('bench sql-vet', main)
