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
        detail: { summary: 'Presets you can use: the built-ins first, then your own; `q` searches names' },
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
      { auth: true, body: presetBody, response: { 201: presetSchema, ...problems(401, 403, 422, 429) }, detail: { summary: 'Save a preset of your own' } },
    )
    .get('/presets/:id', async ({ principal, params }) => toPresetDto(await presets.get(principal, params.id)), {
      auth: true,
      params: idParams,
      response: { 200: presetSchema, ...problems(401, 403, 404, 422, 429) },
      detail: { summary: 'A built-in preset or one of yours' },
    })
    .patch('/presets/:id', async ({ principal, params, body }) => toPresetDto(await presets.update(principal, params.id, fromPresetBody(body))), {
      auth: true,
      params: idParams,
      body: presetBody.partial(),
      response: { 200: presetSchema, ...problems(401, 403, 404, 422, 429) },
      detail: { summary: 'Change one of your presets (built-ins are read-only: 403); `null` clears a field' },
    })
    .delete(
      '/presets/:id',
      async ({ principal, params, set }) => {
        await presets.remove(principal, params.id)
        set.status = 204
      },
      { auth: true, params: idParams, response: { 204: z.void(), ...problems(401, 403, 404, 422, 429) }, detail: { summary: 'Delete one of your presets (built-ins: 403)' } },
    )
}
