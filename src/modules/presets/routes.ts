/** @module /api/v1/presets (docs/api.md §12): built-ins for everyone (read-only), and each user's own. */
import { Elysia } from 'elysia'
import { z } from 'zod'
import { idParams, listQuery, page, pageOf, problems } from '../../lib/schemas.ts'
import type { authPlugin } from '../../plugins/auth.ts'
import { fromPresetBody, presetBody, presetSchema, toPresetDto } from './model.ts'
import type { PresetsService } from './service.ts'

export function presetRoutes(deps: { presets: PresetsService; authPlugin: ReturnType<typeof authPlugin> }) {
  const { presets } = deps
  return new Elysia({ name: 'hearth.routes.presets', prefix: '/api/v1', detail: { tags: ['Presets'] } })
    .use(deps.authPlugin)
    .get(
      '/presets',
      async ({ principal, query }) => {
        const { rows, total } = await presets.list(principal, query)
        return pageOf(rows.map(toPresetDto), total, query)
      },
      {
        auth: true,
        query: listQuery.extend({ q: z.string().max(100).optional() }),
        response: { 200: page(presetSchema), ...problems(401, 403, 422, 429) },
        detail: { summary: 'List presets', description: 'The built-in presets first, then your own; `q` searches names.' },
      },
    )
    .post(
      '/presets',
      async ({ principal, body, set }) => {
        const row = await presets.create(principal, fromPresetBody(body))
        set.status = 201
        set.headers.location = `/api/v1/presets/${row.id}`
        return toPresetDto(row)
      },
      { auth: true, body: presetBody, response: { 201: presetSchema, ...problems(401, 403, 422, 429) }, detail: { summary: 'Create a preset', description: 'A saved assistant: system prompt, model, temperature, max tokens, tools. A conversation with its `preset_id` takes what it sets none of its own.' } },
    )
    .get('/presets/:id', async ({ principal, params }) => toPresetDto(await presets.get(principal, params.id)), {
      auth: true,
      params: idParams,
      response: { 200: presetSchema, ...problems(401, 403, 404, 422, 429) },
      detail: { summary: 'Get a preset', description: "A built-in preset or one of yours; another user's is `404`." },
    })
    .patch('/presets/:id', async ({ principal, params, body }) => toPresetDto(await presets.update(principal, params.id, fromPresetBody(body))), {
      auth: true,
      params: idParams,
      body: presetBody.partial(),
      response: { 200: presetSchema, ...problems(401, 403, 404, 422, 429) },
      detail: { summary: 'Change a preset', description: 'The fields sent are set and `null` clears one. Built-in presets are read-only (`403`).' },
    })
    .delete(
      '/presets/:id',
      async ({ principal, params, set }) => {
        await presets.remove(principal, params.id)
        set.status = 204
      },
      { auth: true, params: idParams, response: { 204: z.void(), ...problems(401, 403, 404, 422, 429) }, detail: { summary: 'Delete a preset', description: 'Built-in presets cannot be deleted (`403`).' } },
    )
}
