/** @module GET /api/v1/history (docs/api.md §17): the caller's conversations and tasks in one list. */
import { Elysia } from 'elysia'
import { z } from 'zod'
import { isoDate, listQuery, page, pageOf, problems } from '../../lib/schemas.ts'
import type { authPlugin } from '../../plugins/auth.ts'
import { groupOf, type HistoryItem, type HistoryService } from './service.ts'

export const historyItemSchema = z
  .object({
    id: z.string(),
    kind: z.enum(['conversation', 'task']),
    title: z.string().nullable(),
    agent_id: z.string().nullable(),
    status: z.string().nullable().describe("a task's status; null for a conversation"),
    group: z.enum(['today', 'yesterday', 'previous_7_days', 'previous_30_days', 'older']).describe("by `updated_at`, in whole days before the server's UTC date"),
    created_at: isoDate,
    updated_at: isoDate,
  })
  .meta({ id: 'HistoryItem' })

const toHistoryDto = (i: HistoryItem, now: Date): z.infer<typeof historyItemSchema> => ({
  id: i.id,
  kind: i.kind,
  title: i.title,
  agent_id: i.agentId,
  status: i.status,
  group: groupOf(i.updatedAt, now),
  created_at: i.createdAt.toISOString(),
  updated_at: i.updatedAt.toISOString(),
})

export function historyRoutes(deps: { history: HistoryService; authPlugin: ReturnType<typeof authPlugin> }) {
  return new Elysia({ name: 'hearth.routes.history', prefix: '/api/v1', detail: { tags: ['Agents'] } }).use(deps.authPlugin).get(
    '/history',
    async ({ principal, query }) => {
      const { rows, total } = await deps.history.list(principal.userId, { includeTasks: query.include_tasks === 'true', limit: query.limit, offset: query.offset })
      const now = new Date()
      return pageOf(
        rows.map((r) => toHistoryDto(r, now)),
        total,
        query,
      )
    },
    {
      auth: true,
      query: listQuery.extend({ include_tasks: z.enum(['true', 'false']).optional() }),
      response: { 200: page(historyItemSchema), ...problems(401, 403, 422, 429) },
      detail: {
        summary: 'Your history',
        description:
          "Your conversations — and your tasks with `include_tasks=true` — in one list, most recently updated first, each with its `kind` and a `group`: `today`, `yesterday`, `previous_7_days`, `previous_30_days` or `older`, by whole days between its `updated_at` and the server's UTC date.",
      },
    },
  )
}
