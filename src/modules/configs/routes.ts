/** @module /api/v1/configs and /api/v1/config/info (docs/api.md §10): every user's personal settings and the admins' global ones. */
import { Elysia } from 'elysia'
import { z } from 'zod'
import { idParams, listQuery, page, pageOf, problems } from '../../lib/schemas.ts'
import type { authPlugin } from '../../plugins/auth.ts'
import { configBody, configInfoSchema, configListFilter, configSchema, configValueBody, fromConfigBody, toConfigDto, toConfigInfoDto } from './model.ts'
import type { ConfigsService } from './service.ts'

export function configRoutes(deps: { configs: ConfigsService; authPlugin: ReturnType<typeof authPlugin> }) {
  const { configs } = deps
  return new Elysia({ name: 'hearth.routes.configs', prefix: '/api/v1', detail: { tags: ['Configs'] } })
    .use(deps.authPlugin)
    .get('/config/info', () => toConfigInfoDto(configs.info()), {
      auth: true,
      response: { 200: configInfoSchema, ...problems(401, 403, 429) },
      detail: { summary: 'Known settings', description: 'The groups and names Hearth knows, each with a `description` and whether it is `secret`.' },
    })
    .get(
      '/configs',
      async ({ principal, query }) => {
        const { rows, total } = await configs.list(principal, { group: query.config_group, scope: query.scope, limit: query.limit, offset: query.offset })
        return pageOf(rows.map(toConfigDto), total, query)
      },
      {
        auth: true,
        query: listQuery.extend(configListFilter.shape),
        response: { 200: page(configSchema), ...problems(401, 403, 422, 429) },
        detail: {
          summary: 'List settings',
          description: 'The global settings and your personal ones, optionally of one `config_group` or `scope`. Secret values show only a hint (`sk-...abcd`); a global secret shows none to non-admins (`config_value: null`, `has_value` says whether it is set).',
        },
      },
    )
    .post(
      '/configs',
      async ({ principal, body, set }) => {
        const config = await configs.create(principal, fromConfigBody(body))
        set.status = 201
        set.headers.location = `/api/v1/configs/${config.id}`
        return toConfigDto(config)
      },
      {
        auth: true,
        body: configBody,
        response: { 201: configSchema, ...problems(401, 403, 409, 422, 429) },
        detail: {
          summary: 'Add a setting',
          description:
            'Group and name are `a-z 0-9 _ . -`, folded to lower case. `scope` defaults to `global` for an admin and `personal` for everyone else; `global` is for admins (`403`). Names Hearth knows as secret are always stored as secrets (encrypted); for others `is_secret` decides. `409` when the name is set already in that scope.',
        },
      },
    )
    .get('/configs/:id', async ({ principal, params }) => toConfigDto(await configs.get(principal, params.id)), {
      auth: true,
      params: idParams,
      response: { 200: configSchema, ...problems(401, 403, 404, 422, 429) },
      detail: { summary: 'Get a setting', description: "A global setting or one of yours (another user's is `404`). A secret value shows only its hint, a global one none to non-admins." },
    })
    .put('/configs/:id', async ({ principal, params, body }) => toConfigDto(await configs.update(principal, params.id, body.config_value)), {
      auth: true,
      params: idParams,
      body: configValueBody,
      response: { 200: configSchema, ...problems(401, 403, 404, 422, 429) },
      detail: { summary: 'Change a setting', description: 'Replaces the value (`null` clears it); a secret stays a secret, stored encrypted. Global settings are changed by admins only (`403`).' },
    })
    .delete(
      '/configs/:id',
      async ({ principal, params, set }) => {
        await configs.remove(principal, params.id)
        set.status = 204
      },
      {
        auth: true,
        params: idParams,
        response: { 204: z.void(), ...problems(401, 403, 404, 422, 429) },
        detail: { summary: 'Delete a setting', description: 'The setting is removed, on every instance. Global settings are deleted by admins only (`403`).' },
      },
    )
}
