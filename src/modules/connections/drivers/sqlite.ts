/**
 * @module SQLite connections: statements run in child processes (sqlite-child.ts) that the server
 * kills when a statement runs past its time or is cancelled — the only way to stop SQLite mid-statement
 * from Bun. The processes are shared by every SQLite connection of the instance (at most `max`,
 * started on demand, each ending after it has been idle); each keeps the files it read open.
 * A connection's pool is its file: closing it tells every process to close the file.
 */
import { join } from 'node:path'
import type { Subprocess } from 'bun'
import type { QueryResult, SchemaTable } from '../types.ts'
import type { ChildReply, ChildRequest } from './sqlite-child.ts'
import { sessionWithin, StatementFailed, Unreachable, watchStatement, type DriverPool, type RunLimits, type ServerInfo } from './types.ts'

type Job = Exclude<ChildRequest, { op: 'forget' }>
type JobInput = Job extends infer J ? (J extends { id: number } ? Omit<J, 'id'> : never) : never

interface Child {
  proc: Subprocess<'ignore', 'ignore', 'inherit'>
  ready: Promise<void>
  busy: boolean
  idleTimer?: ReturnType<typeof setTimeout>
  pending?: { id: number; settle: (reply: ChildReply | Error) => void }
}

export interface SqliteProcesses {
  exec<T>(job: JobInput, timeoutMs: number, signal?: AbortSignal): Promise<T>
  /** every process closes `file` */
  forget(file: string): void
  /** the ids of the processes alive now (tests, the bench) */
  pids(): number[]
  close(): Promise<void>
}

/** How to start a child: the binary runs itself with a hidden command, a source checkout runs the file. */
function childCommand(): string[] {
  // in a compiled binary the entry point lives in its embedded file system (import.meta keeps the source paths)
  const compiled = Bun.main.startsWith('/$bunfs/') || Bun.main.includes('~BUN')
  return compiled ? [process.execPath, '__sqlite-child'] : [process.execPath, join(import.meta.dir, 'sqlite-child.ts')]
}

export function createSqliteProcesses(options: { max: number; idleMs: number }): SqliteProcesses {
  const children = new Set<Child>()
  const waiting: ((c: Child) => void)[] = []
  let nextId = 1
  let closed = false

  function spawn(): Child {
    let ready!: () => void
    const child: Child = {
      ready: new Promise<void>((r) => (ready = r)),
      busy: true,
      proc: Bun.spawn(childCommand(), {
        // nothing of the server's environment (its secrets, DATABASE_URL) reaches the child
        env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
        stdin: 'ignore',
        stdout: 'ignore',
        stderr: 'inherit',
        serialization: 'json',
        ipc(message: ChildReply | { ready: true }) {
          if ('ready' in message) return ready()
          const p = child.pending
          if (p && p.id === message.id) p.settle(message)
        },
        onExit() {
          children.delete(child)
          child.pending?.settle(new StatementFailed('The SQLite process stopped while running the statement'))
          ready()
        },
      }),
    }
    children.add(child)
    return child
  }

  function kill(child: Child) {
    children.delete(child)
    clearTimeout(child.idleTimer)
    child.proc.kill('SIGKILL')
  }

  /** A free process: an idle one, a new one while under `max`, or the next one freed. */
  function acquire(): Promise<Child> {
    for (const c of children) {
      if (!c.busy) {
        c.busy = true
        clearTimeout(c.idleTimer)
        return Promise.resolve(c)
      }
    }
    if (children.size < options.max) return Promise.resolve(spawn())
    return new Promise((resolve) => waiting.push(resolve))
  }

  function release(child: Child) {
    if (!children.has(child)) {
      // it was killed: a waiter gets a new process
      const next = waiting.shift()
      if (next) next(spawn())
      return
    }
    const next = waiting.shift()
    if (next) return next(child)
    child.busy = false
    child.idleTimer = setTimeout(() => {
      if (child.busy) return
      children.delete(child)
      child.proc.disconnect()
    }, options.idleMs)
    child.idleTimer.unref?.()
  }

  return {
    async exec<T>(job: JobInput, timeoutMs: number, signal?: AbortSignal): Promise<T> {
      if (closed) throw new Unreachable('the server is stopping')
      signal?.throwIfAborted()
      // every process busy: wait for one at most one statement's time (and not past the signal)
      const child = await sessionWithin(acquire(), timeoutMs, signal, release)
      try {
        await child.ready
        if (!children.has(child)) throw new Unreachable('the SQLite process could not start')
        const id = nextId++
        const reply = await new Promise<ChildReply | Error>((settle) => {
          const finish = (r: ChildReply | Error) => {
            watch.done()
            child.pending = undefined
            settle(r)
          }
          const watch = watchStatement(timeoutMs, signal, () => {
            finish(watch.failure() as Error)
            kill(child)
          })
          child.pending = { id, settle: finish }
          child.proc.send({ ...job, id } as Job)
        })
        if (reply instanceof Error || reply === signal?.reason) throw reply
        if (!reply.ok) throw reply.phase === 'open' ? new Unreachable(reply.message) : new StatementFailed(reply.message)
        return reply.result as T
      } finally {
        release(child)
      }
    },

    forget(file: string) {
      for (const c of children) c.proc.send({ op: 'forget', file } satisfies ChildRequest)
    },

    pids: () => [...children].map((c) => c.proc.pid),

    async close() {
      closed = true
      const all = [...children]
      for (const c of all) kill(c)
      await Promise.all(all.map((c) => c.proc.exited))
    },
  }
}

/** A SQLite connection's pool: its local file, read by the shared processes. */
export function openSqlite(file: string, processes: SqliteProcesses, onClose?: () => Promise<void>): DriverPool {
  return {
    async run(sql: string, { maxRows, timeoutMs, signal }: RunLimits): Promise<QueryResult> {
      const started = performance.now()
      const result = await processes.exec<Omit<QueryResult, 'rows_count' | 'duration_ms'>>({ op: 'query', file, sql, maxRows }, timeoutMs, signal)
      return { ...result, rows_count: result.rows.length, duration_ms: Math.round((performance.now() - started) * 100) / 100 }
    },
    schema: (timeoutMs) => processes.exec<SchemaTable[]>({ op: 'schema', file, countBudgetMs: Math.min(2_000, timeoutMs / 2) }, timeoutMs),
    probe: (timeoutMs) => processes.exec<ServerInfo>({ op: 'probe', file }, timeoutMs),
    async close() {
      processes.forget(file)
      await onClose?.()
    },
  }
}
