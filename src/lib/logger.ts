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
  if (value instanceof Error) return { name: value.name, message: value.message, stack: value.stack }
  return value
}
