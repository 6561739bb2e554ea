/**
 * @module A named lock around a read-then-write. On Postgres: a transaction holding
 * `pg_advisory_xact_lock(hashtext(name))`, so it holds across instances. On SQLite, where all
 * writers are this one process, an in-process queue per name (awaits inside a SQLite
 * "transaction" would let other requests interleave, so none is used).
 */
import { sql } from 'drizzle-orm'
import type { Database, Db } from './index.ts'

const queues = new Map<string, Promise<unknown>>()

export async function withLock<T>(database: Database, name: string, fn: (db: Db) => Promise<T>): Promise<T> {
  if (database.dialect === 'postgres') {
    return database.db.transaction(async (tx) => {
      await tx.execute(sql`SELECT pg_advisory_xact_lock(hashtext(${name}))`)
      return fn(tx as unknown as Db)
    })
  }
  const key = `${database.client.kind === 'sqlite' ? database.client.sqlite.filename : ''}\0${name}`
  const previous = queues.get(key) ?? Promise.resolve()
  const run = previous.then(() => fn(database.db), () => fn(database.db))
  const tail = run.catch(() => {})
  queues.set(key, tail)
  try {
    return await run
  } finally {
    if (queues.get(key) === tail) queues.delete(key)
  }
}
