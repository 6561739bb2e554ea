/**
 * @module The process that reads SQLite files for the connections module (drivers/sqlite.ts): a
 * child of the server, so a statement that runs too long is stopped by killing the process —
 * bun:sqlite cannot interrupt a statement, and a terminated Worker goes on running it. Each file is
 * opened read-only with `PRAGMA query_only`, and only a statement that returns rows and changes
 * nothing (`reader` and `readonly`) is stepped: ATTACH, VACUUM INTO, PRAGMA settings and BEGIN
 * never run. Messages come over IPC, one at a time; values go back as JSON holds them.
 * Self-contained on purpose: it is started as its own program (`bun sqlite-child.ts`, or
 * `hearth __sqlite-child` in the binary).
 */
import { Database, type Statement } from 'bun:sqlite'

export type ChildRequest =
  | { id: number; op: 'query'; file: string; sql: string; maxRows: number }
  | { id: number; op: 'schema'; file: string; countBudgetMs: number }
  | { id: number; op: 'probe'; file: string }
  | { op: 'forget'; file: string }

export type ChildReply = { id: number; ok: true; result: unknown } | { id: number; ok: false; phase: 'open' | 'statement'; message: string }

const MAX_OPEN = 32

class OpenFailed extends Error {}

function toJson(value: unknown): unknown {
  if (typeof value === 'bigint') return value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : value.toString()
  if (typeof value === 'number') return Number.isFinite(value) ? value : String(value)
  if (value instanceof Uint8Array) return Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('base64')
  return value ?? null
}

export function runSqliteChild(): Promise<number> {
  const open = new Map<string, Database>()

  function db(file: string): Database {
    const hit = open.get(file)
    if (hit) {
      open.delete(file)
      open.set(file, hit)
      return hit
    }
    let d: Database
    try {
      d = new Database(file, { readonly: true, safeIntegers: true, create: false })
      d.run('PRAGMA query_only = ON')
      // reads the header: a file that is not a database fails here, not in the caller's statement
      d.prepare('SELECT count(*) FROM sqlite_schema').get()
    } catch (error) {
      throw new OpenFailed((error as Error).message)
    }
    if (open.size >= MAX_OPEN) {
      const [oldest, handle] = open.entries().next().value!
      handle.close()
      open.delete(oldest)
    }
    open.set(file, d)
    return d
  }

  function readerOf(d: Database, sql: string): Statement {
    const stmt = d.prepare(sql)
    if (!stmt.reader || !stmt.readonly) {
      stmt.finalize()
      throw new Error('Only a statement that reads rows may run (this one returns none, or changes something)')
    }
    return stmt
  }

  function query(file: string, sql: string, maxRows: number) {
    const d = db(file)
    const stmt = readerOf(d, sql)
    try {
      const names = stmt.columnNames
      const declared = stmt.declaredTypes
      const actual = stmt.columnTypes
      const columns = names.map((name, i) => ({ name, type: declared[i] ?? actual[i]?.toLowerCase() ?? '' }))
      const rows: unknown[][] = []
      let truncated = false
      if (new Set(names).size === names.length) {
        for (const row of stmt.iterate() as Iterable<Record<string, unknown>>) {
          if (rows.length >= maxRows) {
            truncated = true
            break
          }
          rows.push(names.map((n) => toJson(row[n])))
        }
      } else {
        // rows as objects lose a repeated column name (a join's two `id`s): the statement is read as
        // a subquery with a LIMIT, whose rows come as arrays
        let values: unknown[][]
        try {
          const bounded = d.prepare(`SELECT * FROM (\n${sql.replace(/;\s*$/, '')}\n) LIMIT ${maxRows + 1}`)
          values = bounded.values()
          bounded.finalize()
        } catch {
          values = stmt.values()
        }
        truncated = values.length > maxRows
        for (const row of values.slice(0, maxRows)) rows.push(row.map(toJson))
      }
      return { columns, rows, truncated }
    } finally {
      stmt.finalize()
    }
  }

  function schema(file: string, countBudgetMs: number) {
    const d = db(file)
    const rows = d
      .prepare(
        `SELECT m.name, m.type, p.name, p.type, p."notnull", p.pk FROM sqlite_schema m JOIN pragma_table_info(m.name) p
         WHERE m.type IN ('table', 'view') AND m.name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY m.name, p.cid`,
      )
      .values() as [string, string, string, string, bigint, bigint][]
    const tables: { name: string; kind: string; columns: { name: string; type: string; nullable: boolean; primary: boolean }[]; row_count: number | null }[] = []
    for (const [table, kind, column, type, notnull, pk] of rows) {
      let current = tables.at(-1)
      if (!current || current.name !== table) tables.push((current = { name: table, kind, columns: [], row_count: null }))
      current.columns.push({ name: column, type, nullable: !notnull && !pk, primary: pk > 0n })
    }
    // exact counts, while the budget lasts (a huge table is left uncounted rather than fail the schema)
    const until = performance.now() + countBudgetMs
    for (const t of tables) {
      if (t.kind !== 'table' || performance.now() > until) continue
      try {
        const [n] = d.prepare(`SELECT count(*) FROM "${t.name.replaceAll('"', '""')}"`).values()[0] as [bigint]
        t.row_count = Number(n)
      } catch {
        // a virtual table whose module is missing: no count
      }
    }
    return tables.map(({ kind: _kind, ...t }) => t)
  }

  function probe(file: string) {
    const [version, tables] = db(file)
      .prepare(`SELECT sqlite_version(), (SELECT count(*) FROM sqlite_schema WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\')`)
      .values()[0] as [string, bigint]
    return { version: `SQLite ${version}`, tablesCount: Number(tables) }
  }

  process.on('message', (m: ChildRequest) => {
    if (m.op === 'forget') {
      open.get(m.file)?.close()
      open.delete(m.file)
      return
    }
    let reply: ChildReply
    try {
      const result = m.op === 'query' ? query(m.file, m.sql, m.maxRows) : m.op === 'schema' ? schema(m.file, m.countBudgetMs) : probe(m.file)
      reply = { id: m.id, ok: true, result }
    } catch (error) {
      reply = { id: m.id, ok: false, phase: error instanceof OpenFailed ? 'open' : 'statement', message: (error as Error).message || String(error) }
    }
    process.send!(reply)
  })
  process.send!({ ready: true })
  return new Promise((resolve) =>
    process.on('disconnect', () => {
      for (const d of open.values()) d.close()
      resolve(0)
    }),
  )
}

if (import.meta.main) void runSqliteChild().then((code) => process.exit(code))
