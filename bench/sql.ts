/**
 * @module `npm run bench:sql`: a point select through `POST /api/v1/connections/{id}/query` against
 * the same select made with the same driver directly, on each database, in one run; and the schema
 * of a database of 500 tables × 20 columns.
 *
 * Hearth (`bun src/index.ts`, a fresh data dir) gets one connection per database: Postgres (a
 * throw-away database next to BENCH_PG_URL, else TEST_DATABASE_URL, else
 * postgres://postgres@127.0.0.1:5432/postgres), MariaDB/MySQL (next to BENCH_MYSQL_URL, else
 * TEST_MYSQL_URL, else mysql://root@127.0.0.1:3306/test) and SQLite (a file uploaded as a dataset).
 * A database that cannot be reached is left out, and the line under the table says so.
 *
 * Part 1, added latency: `SELECT id, name, value FROM points WHERE id = N` (10,000 rows, N changing)
 * BENCH_SQL_CALLS times per target, sequentially, in BENCH_SQL_ROUNDS interleaved rounds (so a noisy
 * moment hits them all), after a warm-up:
 * - `driver`: the plain driver in this process — postgres-js `unsafe()` (unprepared, as Hearth
 *   sends it), mysql2 `pool.query()`, bun:sqlite `prepare().values()` on the same file;
 * - `runner`: Hearth's own driver code in this process (src/modules/connections/drivers): the
 *   read-only transaction, the timeout, the row cap, JSON-safe values — on SQLite the child process;
 * - `HTTP`: the route, with a Bearer token over one keep-alive connection: auth, the rate limiter, the
 *   vetting (node-sql-parser), the pool, the runner, the response schema.
 * The added p50 is the HTTP p50 minus the driver's.
 *
 * Part 2, schema: a database of 500 tables × 20 columns per engine; `GET /schema?refresh=true`
 * (median of BENCH_SQL_SCHEMA_RUNS) and the runner's `schema()` directly, with the answer's size.
 *
 * Exit code: 0 whatever the goals say; 1 when the harness broke or an answer was wrong; 2 for a bad
 * setting. See bench/README.md.
 */
import { Database } from 'bun:sqlite'
import { arch, cpus, loadavg, platform } from 'node:os'
import { join } from 'node:path'
import mysql from 'mysql2/promise'
import postgres from 'postgres'
import { openMysql } from '../src/modules/connections/drivers/mysql.ts'
import { openPostgres } from '../src/modules/connections/drivers/postgres.ts'
import { createSqliteProcesses, openSqlite } from '../src/modules/connections/drivers/sqlite.ts'
import type { DriverPool } from '../src/modules/connections/drivers/types.ts'
import { envInteger, errorMessage, formatMs, hardStop, postJson, renderTable, runAsScript, samplePercentile, setupTokenIn, startHearthServer, tempDir } from './lib.ts'

const root = join(import.meta.dir, '..')
const BENCH_USER = { username: 'bench_user', email: 'bench@example.com', password: 'bench-password-1' }
const POINTS = 10_000
const SCHEMA_TABLES = 500
const SCHEMA_COLUMNS = 20
const GOAL_ADDED_P50_MS = 2
const WARMUP_CALLS = 200

const progress = (text: string) => process.stderr.write(`bench sql: ${text}\n`)
const pointSql = (n: number) => `SELECT id, name, value FROM points WHERE id = ${(n % POINTS) + 1}`

interface Engine {
  name: 'PostgreSQL' | 'MariaDB/MySQL' | 'SQLite'
  /** the body of POST /connections for the points database, and for the schema one */
  body: (name: string) => Promise<Record<string, unknown>>
  schemaBody: (name: string) => Promise<Record<string, unknown>>
  /** the plain driver, and Hearth's runner, on the points database */
  plain: (sql: string) => Promise<unknown[][]>
  runner: DriverPool
  schemaRunner: DriverPool
  drop(): Promise<void>
}

const columnsOf = (text: string, int: string) => Array.from({ length: SCHEMA_COLUMNS }, (_, c) => (c === 0 ? `id ${int} PRIMARY KEY` : `col_${c} ${c % 3 === 0 ? int : text}${c % 2 ? ' NOT NULL' : ''}`)).join(', ')
const pointRows = () => Array.from({ length: POINTS }, (_, i) => `(${i + 1}, 'name ${i + 1}', ${(i * 1.5).toFixed(1)})`).join(', ')

async function postgresEngine(dir: string): Promise<Engine> {
  const url = process.env.BENCH_PG_URL || process.env.TEST_DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/postgres'
  const stamp = `${process.pid}_${Date.now().toString(36)}`
  const names = { points: `hearth_bench_points_${stamp}`, schema: `hearth_bench_schema_${stamp}` }
  const rootSql = postgres(url, { max: 1, onnotice: () => {}, connect_timeout: 3 })
  for (const n of Object.values(names)) await rootSql.unsafe(`CREATE DATABASE "${n}"`)
  const at = (db: string) => {
    const u = new URL(url)
    u.pathname = `/${db}`
    return u
  }
  const points = postgres(at(names.points).toString(), { max: 4, prepare: false, onnotice: () => {} })
  await points.unsafe('CREATE TABLE points (id integer PRIMARY KEY, name text NOT NULL, value double precision)')
  await points.unsafe(`INSERT INTO points VALUES ${pointRows()}`)
  await points.unsafe('ANALYZE points')
  const schemaSql = postgres(at(names.schema).toString(), { max: 1, onnotice: () => {} })
  await schemaSql.unsafe(Array.from({ length: SCHEMA_TABLES }, (_, t) => `CREATE TABLE table_${t} (${columnsOf('text', 'integer')});`).join('\n')).simple()
  await schemaSql.end()
  const u = at(names.points)
  const fields = (db: string) => ({ driver: 'postgres', host: u.hostname, port: Number(u.port || 5432), database: db, username: decodeURIComponent(u.username || 'postgres'), ...(u.password ? { password: decodeURIComponent(u.password) } : {}) })
  const target = (db: string) => ({ driver: 'postgres' as const, host: u.hostname, address: u.hostname, port: Number(u.port || 5432), database: db, username: decodeURIComponent(u.username || 'postgres'), password: u.password ? decodeURIComponent(u.password) : null, ssl: false, file: null })
  const options = { connectTimeoutMs: 5000, maxSessions: 4, statementTimeoutMs: 10_000 }
  void dir
  return {
    name: 'PostgreSQL',
    body: async (name) => ({ name, ...fields(names.points) }),
    schemaBody: async (name) => ({ name, ...fields(names.schema) }),
    plain: async (sql) => (await points.unsafe(sql).values()) as unknown[][],
    runner: openPostgres(target(names.points), options),
    schemaRunner: openPostgres(target(names.schema), options),
    async drop() {
      await points.end()
      for (const n of Object.values(names)) await rootSql.unsafe(`DROP DATABASE IF EXISTS "${n}" WITH (FORCE)`).catch(() => {})
      await rootSql.end()
    },
  }
}

async function mysqlEngine(): Promise<Engine> {
  const url = new URL(process.env.BENCH_MYSQL_URL || process.env.TEST_MYSQL_URL || 'mysql://root@127.0.0.1:3306/test')
  const stamp = `${process.pid}_${Date.now().toString(36)}`
  const names = { points: `hearth_bench_points_${stamp}`, schema: `hearth_bench_schema_${stamp}` }
  const base = { host: url.hostname, port: Number(url.port || 3306), user: decodeURIComponent(url.username || 'root'), password: url.password ? decodeURIComponent(url.password) : undefined, connectTimeout: 3000 }
  const rootConn = await mysql.createConnection({ ...base, multipleStatements: true })
  for (const n of Object.values(names)) await rootConn.query(`CREATE DATABASE \`${n}\``)
  await rootConn.query(`USE \`${names.points}\`; CREATE TABLE points (id INT PRIMARY KEY, name VARCHAR(100) NOT NULL, value DOUBLE); INSERT INTO points VALUES ${pointRows()}; ANALYZE TABLE points`)
  await rootConn.query(`USE \`${names.schema}\`; ${Array.from({ length: SCHEMA_TABLES }, (_, t) => `CREATE TABLE table_${t} (${columnsOf('VARCHAR(100)', 'INT')});`).join('\n')}`)
  const points = mysql.createPool({ ...base, database: names.points, connectionLimit: 4, rowsAsArray: true })
  const fields = (db: string) => ({ driver: 'mysql', host: base.host, port: base.port, database: db, username: base.user, ...(base.password ? { password: base.password } : {}) })
  const target = (db: string) => ({ driver: 'mysql' as const, host: base.host, address: base.host, port: base.port, database: db, username: base.user, password: base.password ?? null, ssl: false, file: null })
  const options = { connectTimeoutMs: 5000, maxSessions: 4, statementTimeoutMs: 10_000 }
  return {
    name: 'MariaDB/MySQL',
    body: async (name) => ({ name, ...fields(names.points) }),
    schemaBody: async (name) => ({ name, ...fields(names.schema) }),
    plain: async (sql) => (await points.query({ sql, rowsAsArray: true }))[0] as unknown[][],
    runner: openMysql(target(names.points), options),
    schemaRunner: openMysql(target(names.schema), options),
    async drop() {
      await points.end()
      for (const n of Object.values(names)) await rootConn.query(`DROP DATABASE IF EXISTS \`${n}\``).catch(() => {})
      await rootConn.end()
    },
  }
}

async function sqliteEngine(dir: string, upload: (path: string) => Promise<string>, processes: ReturnType<typeof createSqliteProcesses>): Promise<Engine> {
  const pointsPath = join(dir, 'points.sqlite')
  const schemaPath = join(dir, 'schema.sqlite')
  const w = new Database(pointsPath)
  w.run('CREATE TABLE points (id INTEGER PRIMARY KEY, name TEXT NOT NULL, value REAL)')
  w.run(`INSERT INTO points VALUES ${pointRows()}`)
  w.close()
  const s = new Database(schemaPath)
  for (let t = 0; t < SCHEMA_TABLES; t++) s.run(`CREATE TABLE table_${t} (${columnsOf('TEXT', 'INTEGER')})`)
  s.close()
  const plain = new Database(pointsPath, { readonly: true })
  return {
    name: 'SQLite',
    body: async (name) => ({ name, driver: 'sqlite', file_id: await upload(pointsPath) }),
    schemaBody: async (name) => ({ name, driver: 'sqlite', file_id: await upload(schemaPath) }),
    plain: async (sql) => plain.prepare(sql).values() as unknown[][],
    runner: openSqlite(pointsPath, processes),
    schemaRunner: openSqlite(schemaPath, processes),
    async drop() {
      plain.close()
    },
  }
}

type Call = (n: number) => Promise<unknown[][]>

async function sequential(call: Call, calls: number, samples: number[], offset: number) {
  for (let i = 0; i < calls; i++) {
    const n = offset + i
    const started = performance.now()
    const rows = await call(n)
    samples.push(performance.now() - started)
    if (rows.length !== 1 || rows[0]![0] !== (n % POINTS) + 1) throw new Error(`wrong answer for id ${(n % POINTS) + 1}: ${JSON.stringify(rows).slice(0, 200)}`)
  }
}

const median = (values: number[]) => samplePercentile(values, 50)!

export async function runSqlBench(): Promise<number> {
  const calls = envInteger('BENCH_SQL_CALLS', 2000, 10, 1_000_000)
  const rounds = envInteger('BENCH_SQL_ROUNDS', 4, 1, 100)
  const schemaRuns = envInteger('BENCH_SQL_SCHEMA_RUNS', 5, 1, 100)
  for (const setting of [calls, rounds, schemaRuns]) if (setting instanceof Error) return (process.stderr.write(`bench sql: ${setting.message}\n`), 2)
  const perRound = Math.ceil((calls as number) / (rounds as number))
  const timer = hardStop('bench sql', 20 * 60_000)
  const dir = tempDir('hearth-bench-sql-')
  const processes = createSqliteProcesses({ max: 2, idleMs: 60_000 })

  progress('starting Hearth')
  const hearth = await startHearthServer({
    root,
    prefix: 'hearth-bench-sql-',
    setUp: async (url, dataDir) => {
      const { tokens } = await postJson<{ tokens: { access_token: string } }>(url, '/api/v1/auth/register', { ...BENCH_USER, setup_token: setupTokenIn(dataDir) }, 201)
      return { token: tokens.access_token }
    },
  })
  const origin = hearth.server.url
  const token = hearth.value.token
  const upload = async (path: string) => {
    const form = new FormData()
    form.append('purpose', 'dataset')
    form.append('file', Bun.file(path), 'data.sqlite')
    const res = await fetch(`${origin}/api/v1/files`, { method: 'POST', headers: { authorization: `Bearer ${token}` }, body: form })
    if (res.status !== 201) throw new Error(`upload answered ${res.status}: ${await res.text()}`)
    return ((await res.json()) as { id: string }).id
  }
  const engines: Engine[] = []
  const skipped: string[] = []
  try {
    for (const [name, make] of [
      ['PostgreSQL', () => postgresEngine(dir.path)],
      ['MariaDB/MySQL', () => mysqlEngine()],
      ['SQLite', () => sqliteEngine(dir.path, upload, processes)],
    ] as const) {
      progress(`preparing ${name}: ${POINTS.toLocaleString('en-US')} points, and ${SCHEMA_TABLES} tables × ${SCHEMA_COLUMNS} columns`)
      try {
        engines.push(await make())
      } catch (error) {
        skipped.push(`${name} left out: ${errorMessage(error)}`)
      }
    }

    const header = ['database', 'target', 'calls', 'p50 ms', 'p99 ms', 'added p50 ms']
    const cells: string[][] = []
    const goals: string[] = []
    const schemaCells: string[][] = []
    for (const engine of engines) {
      const conn = await postJson<{ id: string }>(origin, '/api/v1/connections', await engine.body(`points_${engine.name.replace(/\W/g, '')}`), 201, token)
      const viaHttp: Call = async (n) => {
        const res = await fetch(`${origin}/api/v1/connections/${conn.id}/query`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body: JSON.stringify({ sql: pointSql(n) }) })
        const text = await res.text()
        if (res.status !== 200) throw new Error(`query answered ${res.status}: ${text.slice(0, 200)}`)
        return (JSON.parse(text) as { rows: unknown[][] }).rows
      }
      const targets: [string, Call][] = [
        ['driver', (n) => engine.plain(pointSql(n))],
        ['runner', async (n) => (await engine.runner.run(pointSql(n), { maxRows: 1000, timeoutMs: 10_000 })).rows],
        ['HTTP POST /connections/{id}/query', viaHttp],
      ]
      progress(`${engine.name}: warm-up`)
      for (const [, call] of targets) await sequential(call, WARMUP_CALLS, [], 0)
      const samples = new Map(targets.map(([name]) => [name, [] as number[]]))
      for (let r = 0; r < (rounds as number); r++) {
        const order = r % 2 === 0 ? targets : [...targets].reverse()
        for (const [name, call] of order) await sequential(call, perRound, samples.get(name)!, r * perRound)
        progress(`${engine.name}: round ${r + 1}/${rounds}`)
      }
      const base = samplePercentile(samples.get('driver')!, 50)!
      for (const [name] of targets) {
        const values = samples.get(name)!
        const p50 = samplePercentile(values, 50)!
        cells.push([engine.name, name, String(values.length), formatMs(p50), formatMs(samplePercentile(values, 99)), name === 'driver' ? '-' : formatMs(p50 - base)])
      }
      const added = samplePercentile(samples.get('HTTP POST /connections/{id}/query')!, 50)! - base
      goals.push(`goal: ${engine.name}: added p50 of the route over the plain driver ≤ ${GOAL_ADDED_P50_MS} ms — ${formatMs(added)} ms: ${added <= GOAL_ADDED_P50_MS ? 'met' : 'MISSED'}`)

      progress(`${engine.name}: schema of ${SCHEMA_TABLES} × ${SCHEMA_COLUMNS}`)
      const schemaConn = await postJson<{ id: string }>(origin, '/api/v1/connections', await engine.schemaBody(`schema_${engine.name.replace(/\W/g, '')}`), 201, token)
      const httpTimes: number[] = []
      const runnerTimes: number[] = []
      let bytes = 0
      for (let i = 0; i < (schemaRuns as number); i++) {
        const started = performance.now()
        const res = await fetch(`${origin}/api/v1/connections/${schemaConn.id}/schema?refresh=true`, { headers: { authorization: `Bearer ${token}` } })
        const text = await res.text()
        httpTimes.push(performance.now() - started)
        if (res.status !== 200) throw new Error(`schema answered ${res.status}: ${text.slice(0, 200)}`)
        const tables = (JSON.parse(text) as { tables: { columns: unknown[] }[] }).tables
        if (tables.length !== SCHEMA_TABLES || tables.some((t) => t.columns.length !== SCHEMA_COLUMNS)) throw new Error(`schema has ${tables.length} tables, not ${SCHEMA_TABLES} × ${SCHEMA_COLUMNS}`)
        bytes = text.length
        const t0 = performance.now()
        await engine.schemaRunner.schema(60_000)
        runnerTimes.push(performance.now() - t0)
      }
      const t0 = performance.now()
      const cached = await fetch(`${origin}/api/v1/connections/${schemaConn.id}/schema`, { headers: { authorization: `Bearer ${token}` } })
      await cached.text()
      const cachedMs = performance.now() - t0
      schemaCells.push([engine.name, formatMs(median(runnerTimes)), formatMs(median(httpTimes)), formatMs(cachedMs), `${(bytes / 1024).toFixed(0)} KiB`])
    }

    console.log(`\nQueries over data connections — ${platform()} ${arch()}, ${cpus().length} CPUs, load ${loadavg().map((l) => l.toFixed(2)).join(' ')}, Bun ${Bun.version}\n`)
    console.log(renderTable(header, cells, new Set([2, 3, 4, 5])))
    console.log(`\nSchema of ${SCHEMA_TABLES} tables × ${SCHEMA_COLUMNS} columns (median of ${schemaRuns})\n`)
    console.log(renderTable(['database', 'runner schema() ms', 'GET /schema?refresh=true ms', 'GET /schema (cached) ms', 'answer'], schemaCells, new Set([1, 2, 3, 4])))
    console.log('')
    for (const line of skipped) console.log(line)
    for (const line of goals) console.log(line)
    return 0
  } finally {
    clearTimeout(timer)
    for (const engine of engines) {
      await engine.runner.close().catch(() => {})
      await engine.schemaRunner.close().catch(() => {})
      await engine.drop().catch(() => {})
    }
    await processes.close()
    await hearth.stop()
    dir.remove()
  }
}

if (import.meta.main) await runAsScript('bench sql', runSqlBench)
