/** @module /api/v1/presets (API.md §8): built-ins for everyone (read-only), and each user's own. */
import { Elysia } from 'elysia'
import { z } from 'zod'
import { isoDate, listQuery, page, pageOf, problemSchema } from '../../lib/schemas.ts'
import type { authPlugin } from '../../plugins/auth.ts'
import { idParams } from '../../lib/schemas.ts'
import { toPreset, type PresetsService } from './service.ts'

const presetSchema = z
  .object({
    id: z.string(),
    name: z.string(),
    description: z.string().nullable(),
    system_prompt: z.string().nullable(),
    model_id: z.string().nullable(),
    temperature: z.number().nullable(),
    max_tokens: z.number().int().nullable(),
    tools: z.array(z.string()),
    is_builtin: z.boolean(),
    created_at: isoDate,
    updated_at: isoDate,
  })
  .meta({ id: 'Preset' })
const presetBody = z.object({
  name: z.string().trim().min(1).max(100),
  description: z.string().max(500).nullable().optional(),
  system_prompt: z.string().max(20_000).nullable().optional(),
  model_id: z.string().trim().min(1).max(200).nullable().optional(),
  temperature: z.number().min(0).max(2).nullable().optional(),
  max_tokens: z.number().int().min(1).max(1_000_000).nullable().optional(),
  tools: z.array(z.string().trim().min(1).max(100)).max(50).optional(),
})
const problems = { 401: problemSchema, 403: problemSchema, 404: problemSchema, 422: problemSchema }

export function presetRoutes(deps: { presets: PresetsService; authPlugin: ReturnType<typeof authPlugin> }) {
  const { presets } = deps
  return new Elysia({ name: 'hearth.routes.presets', prefix: '/api/v1', detail: { tags: ['Presets'] } })
    .use(deps.authPlugin)
    .get(
      '/presets',
      async ({ principal, query }) => {
        const { rows, total } = await presets.list(principal, query)
        return pageOf(rows.map(toPreset), total, query)
      },
      {
        auth: true,
        query: listQuery.extend({ q: z.string().max(100).optional() }),
        response: { 200: page(presetSchema), ...problems },
        detail: { summary: 'Presets you can use: the built-ins first, then your own; `q` searches names' },
      },
    )
    .post(
      '/presets',
      async ({ principal, body, set }) => {
        const row = await presets.create(principal, body)
        set.status = 201
        set.headers.location = `/api/v1/presets/${row.id}`
        return toPreset(row)
      },
      { auth: true, body: presetBody, response: { 201: presetSchema, ...problems }, detail: { summary: 'Save a preset of your own' } },
    )
    .get('/presets/:id', async ({ principal, params }) => toPreset(await presets.get(principal, params.id)), {
      auth: true,
      params: idParams,
      response: { 200: presetSchema, ...problems },
      detail: { summary: 'A built-in preset or one of yours' },
    })
    .patch('/presets/:id', async ({ principal, params, body }) => toPreset(await presets.update(principal, params.id, body)), {
      auth: true,
      params: idParams,
      body: presetBody.partial(),
      response: { 200: presetSchema, ...problems },
      detail: { summary: 'Change one of your presets (built-ins are read-only: 403); `null` clears a field' },
    })
    .delete(
      '/presets/:id',
      async ({ principal, params, set }) => {
        await presets.remove(principal, params.id)
        set.status = 204
      },
      { auth: true, params: idParams, response: { 204: z.void(), ...problems }, detail: { summary: 'Delete one of your presets (built-ins: 403)' } },
    )
}
