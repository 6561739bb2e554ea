/** @module Query pieces that every module's lists use: a case-insensitive substring match, and a page of rows with the count of all of them. */
import { count, sql, type SQL, type SQLWrapper } from 'drizzle-orm'
import type { PgTable } from 'drizzle-orm/pg-core'
import type { Db } from './index.ts'

/** `lower(expr) LIKE '%q%'`, with the wildcards in `q` taken literally; the same on both dialects (a NULL never matches). */
export function containsText(expr: SQLWrapper, q: string): SQL {
  const pattern = `%${q.toLowerCase().replace(/[\\%_]/g, (c) => '\\' + c)}%`
  return sql`lower(${expr}) LIKE ${pattern} ESCAPE '\\'`
}

export interface Page<T> {
  rows: T[]
  /** how many rows match, over all pages */
  total: number
}

export interface PageRequest {
  limit: number
  offset: number
}

/** A page of rows and the total, queried at once. For lists over joins: pass both queries. */
export async function pageWithTotal<T>(rows: PromiseLike<T[]>, total: PromiseLike<{ n: number }[]>): Promise<Page<T>> {
  const [items, [counted]] = await Promise.all([rows, total])
  return { rows: items, total: Number(counted?.n ?? 0) }
}

/** A page of one table's rows matching `where`, in `orderBy` order, with the total. */
export function pageOfTable<T extends PgTable>(db: Db, table: T, where: SQL | undefined, orderBy: (SQL | SQLWrapper)[], page: PageRequest): Promise<Page<T['$inferSelect']>> {
  const from = db.select().from(table as PgTable)
  return pageWithTotal(
    from.where(where).orderBy(...(orderBy as SQL[])).limit(page.limit).offset(page.offset) as unknown as PromiseLike<T['$inferSelect'][]>,
    db.select({ n: count() }).from(table as PgTable).where(where),
  )
}
