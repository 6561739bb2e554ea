/** @module /api/v1/memories (docs/api.md §12): each user's own memories, added to their conversations' system prompt. */
import { Elysia } from 'elysia'
import { z } from 'zod'
import { idParams, listQuery, page, pageOf, problems } from '../../lib/schemas.ts'
import type { authPlugin } from '../../plugins/auth.ts'
import { memoryBody, memorySchema, toMemoryDto } from './model.ts'
import { MAX_MEMORIES_PER_USER, MAX_MEMORY_LENGTH, type MemoriesService } from './service.ts'

export function memoryRoutes(deps: { memories: MemoriesService; authPlugin: ReturnType<typeof authPlugin> }) {
  const { memories } = deps
  return new Elysia({ name: 'hearth.routes.memories', prefix: '/api/v1', detail: { tags: ['Memory'] } })
    .use(deps.authPlugin)
    .get(
      '/memories',
      async ({ principal, query }) => {
        const { rows, total } = await memories.list(principal.userId, query)
        return pageOf(rows.map(toMemoryDto), total, query)
      },
      { auth: true, query: listQuery, response: { 200: page(memorySchema), ...problems(401, 403, 422, 429) }, detail: { summary: 'List memories', description: "Your memories, oldest first. With the `memory_enabled` preference on, they are added to the system prompt of new answers." } },
    )
    .post(
      '/memories',
      async ({ principal, body, set }) => {
        const row = await memories.create(principal.userId, body.content)
        set.status = 201
        set.headers.location = `/api/v1/memories/${row.id}`
        return toMemoryDto(row)
      },
      {
        auth: true,
        body: memoryBody,
        response: { 201: memorySchema, ...problems(401, 403, 409, 422, 429) },
        detail: { summary: 'Add a memory', description: `A short fact to remember, 1–${MAX_MEMORY_LENGTH} characters; at most ${MAX_MEMORIES_PER_USER} memories per user (\`409\` beyond).` },
      },
    )
    .get('/memories/:id', async ({ principal, params }) => toMemoryDto(await memories.get(principal.userId, params.id)), {
      auth: true,
      params: idParams,
      response: { 200: memorySchema, ...problems(401, 403, 404, 422, 429) },
      detail: { summary: 'Get a memory', description: "One of your memories; another user's is `404`." },
    })
    .patch('/memories/:id', async ({ principal, params, body }) => toMemoryDto(await memories.update(principal.userId, params.id, body.content)), {
      auth: true,
      params: idParams,
      body: memoryBody,
      response: { 200: memorySchema, ...problems(401, 403, 404, 422, 429) },
      detail: { summary: 'Change a memory', description: 'Replaces its content.' },
    })
    .delete(
      '/memories/:id',
      async ({ principal, params, set }) => {
        await memories.remove(principal.userId, params.id)
        set.status = 204
      },
      { auth: true, params: idParams, response: { 204: z.void(), ...problems(401, 403, 404, 422, 429) }, detail: { summary: 'Delete a memory', description: 'It is no longer added to new answers.' } },
    )
}
