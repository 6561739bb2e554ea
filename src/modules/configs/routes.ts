/** @module /api/v1/configs and /api/v1/config/info (docs/api.md §10): admin only. */
import { Elysia } from 'elysia'
import { z } from 'zod'
import { idParams, listQuery, page, pageOf, problems } from '../../lib/schemas.ts'
import type { authPlugin } from '../../plugins/auth.ts'
import { configBody, configInfoSchema, configKey, configSchema, configValueBody, fromConfigBody, toConfigDto, toConfigInfoDto } from './model.ts'
import type { ConfigsService } from './service.ts'

export function configRoutes(deps: { configs: ConfigsService; authPlugin: ReturnType<typeof authPlugin> }) {
  const { configs } = deps
  return new Elysia({ name: 'hearth.routes.configs', prefix: '/api/v1', detail: { tags: ['Configs'] } })
    .use(deps.authPlugin)
    .get('/config/info', () => toConfigInfoDto(configs.info()), {
      auth: 'admin',
      response: { 200: configInfoSchema, ...problems(401, 403, 429) },
      detail: { summary: 'The known groups and names, with which are secret' },
    })
    .get(
      '/configs',
      async ({ query }) => {
        const { rows, total } = await configs.list({ group: query.config_group, limit: query.limit, offset: query.offset })
        return pageOf(rows.map(toConfigDto), total, query)
      },
      {
        auth: 'admin',
        query: listQuery.extend({ config_group: configKey.optional() }),
        response: { 200: page(configSchema), ...problems(401, 403, 422, 429) },
        detail: { summary: 'Settings; secret values show only a hint' },
      },
    )
    .post(
      '/configs',
      async ({ body, set }) => {
        const config = await configs.create(fromConfigBody(body))
        set.status = 201
        set.headers.location = `/api/v1/configs/${config.id}`
        return toConfigDto(config)
      },
      {
        auth: 'admin',
        body: configBody,
        response: { 201: configSchema, ...problems(401, 403, 409, 422, 429) },
        detail: { summary: 'Set a value (known secret keys are always stored as secrets)' },
      },
    )
    .get('/configs/:id', async ({ params }) => toConfigDto(await configs.get(params.id)), { auth: 'admin', params: idParams, response: { 200: configSchema, ...problems(401, 403, 404, 422, 429) } })
    .put('/configs/:id', async ({ params, body }) => toConfigDto(await configs.update(params.id, body.config_value)), {
      auth: 'admin',
      params: idParams,
      body: configValueBody,
      response: { 200: configSchema, ...problems(401, 403, 404, 422, 429) },
    })
    .delete(
      '/configs/:id',
      async ({ params, set }) => {
        await configs.remove(params.id)
        set.status = 204
      },
      { auth: 'admin', params: idParams, response: { 204: z.void(), ...problems(401, 403, 404, 422, 429) } },
    )
}
