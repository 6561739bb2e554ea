/** @module /api/v1/configs and /api/v1/config/info (API.md §8): admin only. */
import { Elysia } from 'elysia'
import { z } from 'zod'
import { isoDate, listQuery, page, pageOf, problemSchema } from '../../lib/schemas.ts'
import type { authPlugin } from '../../plugins/auth.ts'
import { idParams } from '../../lib/schemas.ts'
import type { ConfigsService } from './service.ts'

const key = z.string().min(1).max(100).regex(/^[a-z0-9_.-]+$/, 'lower-case letters, digits, _ . -')
const configSchema = z
  .object({ id: z.string(), config_group: z.string(), config_name: z.string(), config_value: z.string().nullable(), is_secret: z.boolean(), created_at: isoDate, updated_at: isoDate })
  .meta({ id: 'Config' })
const problems = { 401: problemSchema, 403: problemSchema, 404: problemSchema, 409: problemSchema, 422: problemSchema }

export function configRoutes(deps: { configs: ConfigsService; authPlugin: ReturnType<typeof authPlugin> }) {
  const { configs } = deps
  return new Elysia({ name: 'hearth.routes.configs', prefix: '/api/v1', detail: { tags: ['Configs'] } })
    .use(deps.authPlugin)
    .get('/config/info', () => configs.info(), {
      auth: 'admin',
      response: { 200: z.array(z.object({ config_group: z.string(), names: z.array(z.object({ config_name: z.string(), description: z.string(), secret: z.boolean() })) })), ...problems },
      detail: { summary: 'The known groups and names, with which are secret' },
    })
    .get(
      '/configs',
      async ({ query }) => {
        const { rows, total } = await configs.list({ group: query.config_group, limit: query.limit, offset: query.offset })
        return pageOf(await Promise.all(rows.map(configs.toDto)), total, query)
      },
      { auth: 'admin', query: listQuery.extend({ config_group: key.optional() }), response: { 200: page(configSchema), ...problems }, detail: { summary: 'Settings; secret values show only a hint' } },
    )
    .post(
      '/configs',
      async ({ body, set }) => {
        const row = await configs.create(body)
        set.status = 201
        set.headers.location = `/api/v1/configs/${row.id}`
        return configs.toDto(row)
      },
      {
        auth: 'admin',
        body: z.object({ config_group: key, config_name: key, config_value: z.string().max(65_536).nullable(), is_secret: z.boolean().optional() }),
        response: { 201: configSchema, ...problems },
        detail: { summary: 'Set a value (known secret keys are always stored as secrets)' },
      },
    )
    .get('/configs/:id', async ({ params }) => configs.toDto(await configs.get(params.id)), { auth: 'admin', params: idParams, response: { 200: configSchema, ...problems } })
    .put('/configs/:id', async ({ params, body }) => configs.toDto(await configs.update(params.id, body.config_value)), {
      auth: 'admin',
      params: idParams,
      body: z.object({ config_value: z.string().max(65_536).nullable() }),
      response: { 200: configSchema, ...problems },
    })
    .delete(
      '/configs/:id',
      async ({ params, set }) => {
        await configs.remove(params.id)
        set.status = 204
      },
      { auth: 'admin', params: idParams, response: { 204: z.void(), ...problems } },
    )
}
