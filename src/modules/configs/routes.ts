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
      detail: { summary: 'Known settings', description: 'The groups and names Hearth knows, each with a `description` and whether it is `secret`.' },
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
        detail: { summary: 'List settings', description: 'The instance settings, optionally of one `config_group`. Secret values show only a hint (`sk-...abcd`).' },
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
        detail: { summary: 'Add a setting', description: 'Group and name are lower-case `a-z 0-9 _ . -`. Names Hearth knows as secret are always stored as secrets (encrypted); for others `is_secret` decides. `409` when the name is set already.' },
      },
    )
    .get('/configs/:id', async ({ params }) => toConfigDto(await configs.get(params.id)), {
      auth: 'admin',
      params: idParams,
      response: { 200: configSchema, ...problems(401, 403, 404, 422, 429) },
      detail: { summary: 'Get a setting', description: 'A secret value shows only its hint.' },
    })
    .put('/configs/:id', async ({ params, body }) => toConfigDto(await configs.update(params.id, body.config_value)), {
      auth: 'admin',
      params: idParams,
      body: configValueBody,
      response: { 200: configSchema, ...problems(401, 403, 404, 422, 429) },
      detail: { summary: 'Change a setting', description: 'Replaces the value (`null` clears it); a secret stays a secret, stored encrypted.' },
    })
    .delete(
      '/configs/:id',
      async ({ params, set }) => {
        await configs.remove(params.id)
        set.status = 204
      },
      { auth: 'admin', params: idParams, response: { 204: z.void(), ...problems(401, 403, 404, 422, 429) }, detail: { summary: 'Delete a setting', description: 'The setting is removed, on every instance.' } },
    )
}
