/**
 * @module Independent writes sent as one batch. On SQLite: one synchronous transaction (bun:sqlite
 * statements run synchronously, so nothing interleaves and there is one commit for the lot). On
 * Postgres: sent together, pipelined over the pool, each committing on its own. Either way every
 * write succeeds or fails alone (on SQLite a failed statement rolls back only itself).
 */
import type { Database } from './index.ts'

/** A statement made once with `.prepare(name)` from placeholders. */
export interface PreparedWrite {
  execute(values?: Record<string, unknown>): Promise<unknown>
}

/** Run each write with its values; returns each write's error (undefined when it succeeded), in order. */
export async function writeBatch(database: Database, writes: readonly (readonly [PreparedWrite, Record<string, unknown>])[]): Promise<unknown[]> {
  if (database.client.kind === 'sqlite') {
    const errors: unknown[] = []
    database.client.sqlite.transaction(() => {
      for (const [query, values] of writes) {
        try {
          // Drizzle's SQLite prepared statements run synchronously with run(); execute() would defer to a then().
          ;(query as unknown as { run(values: Record<string, unknown>): unknown }).run(values)
          errors.push(undefined)
        } catch (error) {
          errors.push(error)
        }
      }
    })()
    return errors
  }
  return Promise.all(writes.map(([query, values]) => query.execute(values).then(() => undefined, (error: unknown) => error ?? new Error('write failed'))))
}
