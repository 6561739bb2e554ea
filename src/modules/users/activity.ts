/**
 * @module What users have made, counted by the modules that own it: each module gives a Counter
 * for its kinds (chat: conversations and messages; tasks: tasks; files: the bytes stored), and /users/me/stats and
 * /system/status add up what they give.
 */

export type ActivityCounts = { conversations: number; messages: number; tasks: number; storage_bytes: number }

export interface Counter {
  /** one user's counts, for the kinds this counter knows */
  countsOf(userId: string): Promise<Partial<ActivityCounts>>
  /** everyone's counts */
  totals(): Promise<Partial<ActivityCounts>>
}

/** The counts given, added up; a kind no counter gives is 0. */
export async function sumCounts(parts: Promise<Partial<ActivityCounts>>[]): Promise<ActivityCounts> {
  const sum: ActivityCounts = { conversations: 0, messages: 0, tasks: 0, storage_bytes: 0 }
  for (const part of await Promise.all(parts)) {
    sum.conversations += part.conversations ?? 0
    sum.messages += part.messages ?? 0
    sum.tasks += part.tasks ?? 0
    sum.storage_bytes += part.storage_bytes ?? 0
  }
  return sum
}
