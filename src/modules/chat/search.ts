/**
 * @module Conversation search: a title substring, or every word of the query in a message of the
 * conversation (as a prefix) — SQLite's FTS5 index or Postgres' text search, one meaning on both.
 */
import { or, sql, type SQL } from 'drizzle-orm'
import type { Database } from '../../db/index.ts'
import { containsText } from '../../db/query.ts'

/** The words of a search, lower-cased: letters, digits and _ only (so they are safe in any query syntax). */
const searchWords = (q: string) => (q.toLowerCase().match(/[\p{L}\p{N}_]+/gu) ?? []).slice(0, 16)
/** FTS5: every word must match, as a prefix. */
const ftsQuery = (words: string[]) => words.map((w) => `"${w}"*`).join(' ')
/** Postgres tsquery: the same. */
const tsQuery = (words: string[]) => words.map((w) => `${w}:*`).join(' & ')

/** The condition on `conversations` for a search of `q` (already trimmed, not empty). */
export function conversationMatches(database: Database, q: string): SQL {
  const { t } = database
  const inTitle = containsText(t.conversations.title, q)
  const words = searchWords(q)
  if (!words.length) return inTitle
  const inMessages =
    database.dialect === 'postgres'
      ? sql`EXISTS (SELECT 1 FROM ${t.messages} m WHERE m.conversation_id = ${t.conversations.id} AND to_tsvector('simple', m.content) @@ to_tsquery('simple', ${tsQuery(words)}))`
      : sql`EXISTS (SELECT 1 FROM messages_fts JOIN ${t.messages} m ON m.rowid = messages_fts.rowid WHERE messages_fts MATCH ${ftsQuery(words)} AND m.conversation_id = ${t.conversations.id})`
  return or(inTitle, inMessages)!
}
