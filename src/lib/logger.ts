/** @module JSON-lines logger. One object per line; callers never pass bodies, tokens or secrets. */
import type { LogLevel } from '../config.ts'

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 }

export type LogFields = Record<string, unknown>

export interface Logger {
  debug(msg: string, fields?: LogFields): void
  info(msg: string, fields?: LogFields): void
  warn(msg: string, fields?: LogFields): void
  error(msg: string, fields?: LogFields): void
  /** Write whatever is buffered (called at shutdown). */
  flush(): void
  /** whether lines of this level are written (to skip building them) */
  enabled(level: Exclude<LogLevel, 'silent'>): boolean
}

export type LogSink = (line: string) => void

/** Lines are queued and written together once per tick, so a busy server does not pay a write per request. */
export function createLogger(level: LogLevel, sink?: LogSink): Logger {
  const min = RANK[level]
  let queue: string[] = []
  let scheduled = false
  const write = sink ?? ((chunk: string) => process.stdout.write(chunk))
  const flush = () => {
    scheduled = false
    if (queue.length === 0) return
    const chunk = queue.join('')
    queue = []
    write(chunk)
  }
  const log = (lvl: Exclude<LogLevel, 'silent'>, msg: string, fields?: LogFields) => {
    if (RANK[lvl] < min) return
    queue.push(JSON.stringify({ time: new Date().toISOString(), level: lvl, msg, ...fields }, errorReplacer) + '\n')
    if (!scheduled) {
      scheduled = true
      setImmediate(flush)
    }
  }
  return {
    debug: (m, f) => log('debug', m, f),
    info: (m, f) => log('info', m, f),
    warn: (m, f) => log('warn', m, f),
    error: (m, f) => log('error', m, f),
    flush,
    enabled: (lvl) => RANK[lvl] >= min,
  }
}

function errorReplacer(_key: string, value: unknown) {
  return value instanceof Error ? describeError(value, 0) : value
}

/** Fields of a database driver's error that name things (never values), kept beside its message and code. */
const DRIVER_FIELDS = ['table_name', 'column_name', 'constraint_name'] as const

/**
 * An error as a log field — name, message, code, stack and its cause — built from those fields only,
 * so what an error carries besides (a failed query's parameters: message text, search terms, login
 * names, key hashes, encrypted keys; a Postgres error's `detail`, "Failing row contains (…)") is never
 * written. Drizzle's DrizzleQueryError lists the parameters in its message, so for a failed query the
 * message is only the statement, and the driver's own error follows as its cause.
 */
function describeError(error: Error, depth: number): Record<string, unknown> {
  const out: Record<string, unknown> = { name: error.name, message: error.message }
  let stack = error.stack
  const failedQuery = error as Error & { query?: unknown; params?: unknown }
  if (typeof failedQuery.query === 'string' && 'params' in failedQuery) {
    out.message = `Failed query: ${failedQuery.query}`
    // the stack starts with the message: keep only the frames
    const frames = stack?.indexOf('\n    at ') ?? -1
    stack = frames === -1 ? undefined : stack!.slice(frames + 1)
  }
  const { code } = error as { code?: unknown }
  if (typeof code === 'string' || typeof code === 'number') out.code = code
  for (const field of DRIVER_FIELDS) {
    const v = (error as unknown as Record<string, unknown>)[field]
    if (typeof v === 'string') out[field] = v
  }
  out.stack = stack
  const { cause } = error
  if (cause instanceof Error && depth < 3) out.cause = describeError(cause, depth + 1)
  else if (typeof cause === 'string') out.cause = cause
  return out
}
