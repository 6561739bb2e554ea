/** @module /api/v1/memories: each user's own memories, added to their conversations' system prompt. */
import { Elysia } from 'elysia'
import { z } from 'zod'
import { isoDate, listQuery, page, pageOf, problemSchema } from '../../lib/schemas.ts'
import type { authPlugin } from '../../plugins/auth.ts'
import { idParams } from '../../lib/schemas.ts'
import { MAX_MEMORIES_PER_USER, MAX_MEMORY_LENGTH, toMemory, type MemoriesService } from './service.ts'

const memorySchema = z.object({ id: z.string(), content: z.string(), created_at: isoDate, updated_at: isoDate }).meta({ id: 'Memory' })
const memoryBody = z.object({ content: z.string().trim().min(1).max(MAX_MEMORY_LENGTH) })
const problems = { 401: problemSchema, 404: problemSchema, 409: problemSchema, 422: problemSchema }

export function memoryRoutes(deps: { memories: MemoriesService; authPlugin: ReturnType<typeof authPlugin> }) {
  const { memories } = deps
  return new Elysia({ name: 'hearth.routes.memories', prefix: '/api/v1', detail: { tags: ['Memory'] } })
    .use(deps.authPlugin)
    .get(
      '/memories',
      async ({ principal, query }) => {
        const { rows, total } = await memories.list(principal.userId, query)
        return pageOf(rows.map(toMemory), total, query)
      },
      { auth: true, query: listQuery, response: { 200: page(memorySchema), ...problems }, detail: { summary: 'Your memories, oldest first' } },
    )
    .post(
      '/memories',
      async ({ principal, body, set }) => {
        const row = await memories.create(principal.userId, body.content)
        set.status = 201
        set.headers.location = `/api/v1/memories/${row.id}`
        return toMemory(row)
      },
      {
        auth: true,
        body: memoryBody,
        response: { 201: memorySchema, ...problems },
        detail: { summary: `Remember something (1–${MAX_MEMORY_LENGTH} characters, at most ${MAX_MEMORIES_PER_USER} memories: 409 beyond)` },
      },
    )
    .get('/memories/:id', async ({ principal, params }) => toMemory(await memories.get(principal.userId, params.id)), {
      auth: true,
      params: idParams,
      response: { 200: memorySchema, ...problems },
      detail: { summary: 'One of your memories' },
    })
    .patch('/memories/:id', async ({ principal, params, body }) => toMemory(await memories.update(principal.userId, params.id, body.content)), {
      auth: true,
      params: idParams,
      body: memoryBody,
      response: { 200: memorySchema, ...problems },
      detail: { summary: 'Rewrite one of your memories' },
    })
    .delete(
      '/memories/:id',
      async ({ principal, params, set }) => {
        await memories.remove(principal.userId, params.id)
        set.status = 204
      },
      { auth: true, params: idParams, response: { 204: z.void(), ...problems }, detail: { summary: 'Forget one of your memories' } },
    )
}
