/** @module /api/v1/providers and /api/v1/models (docs/api.md §7). */
import { Elysia } from 'elysia'
import { z } from 'zod'
import { idParams, page, pageOf, problems } from '../../lib/schemas.ts'
import type { authPlugin } from '../../plugins/auth.ts'
import {
  fromModelBody,
  fromModelPatch,
  fromProviderBody,
  fromProviderPatch,
  modelBody,
  modelListQuery,
  modelPatch,
  modelSchema,
  modelTestSchema,
  providerBody,
  providerCreatedSchema,
  providerListQuery,
  providerPatch,
  providerSchema,
  providerTestSchema,
  syncResultSchema,
  toModelDto,
  toModelSyncDto,
  toModelTestDto,
  toProviderDto,
  toProviderTestDto,
} from './model.ts'
import type { ProvidersService } from './service.ts'

export function providerRoutes(deps: { providers: ProvidersService; authPlugin: ReturnType<typeof authPlugin> }) {
  const { providers } = deps
  return new Elysia({ name: 'hearth.routes.providers', prefix: '/api/v1', detail: { tags: ['Providers and models'] } })
    .use(deps.authPlugin)
    .get(
      '/providers',
      async ({ principal, query }) => {
        const { rows, total } = await providers.list(principal, query)
        return pageOf(rows.map(toProviderDto), total, query)
      },
      {
        auth: true,
        query: providerListQuery,
        response: { 200: page(providerSchema), ...problems(401, 422, 429) },
        detail: { summary: 'Providers you can use: global ones and your own' },
      },
    )
    .post(
      '/providers',
      async ({ principal, body, set }) => {
        const row = await providers.create(principal, fromProviderBody(body))
        const sync = body.sync_models === false ? undefined : await providers.syncNewProvider(principal, row)
        set.status = 201
        set.headers.location = `/api/v1/providers/${row.id}`
        return sync ? { ...toProviderDto(row), model_sync: toModelSyncDto(sync) } : toProviderDto(row)
      },
      {
        auth: true,
        body: providerBody,
        response: { 201: providerCreatedSchema, ...problems(401, 403, 422, 429) },
        detail: { summary: 'Add a provider (global: admins only); the API key is stored encrypted and never returned' },
      },
    )
    .get('/providers/:id', async ({ principal, params }) => toProviderDto(await providers.get(principal, params.id)), {
      auth: true,
      params: idParams,
      response: { 200: providerSchema, ...problems(401, 404, 422, 429) },
    })
    .patch('/providers/:id', async ({ principal, params, body }) => toProviderDto(await providers.update(principal, params.id, fromProviderPatch(body))), {
      auth: true,
      params: idParams,
      body: providerPatch,
      response: { 200: providerSchema, ...problems(401, 403, 404, 422, 429) },
      detail: { summary: 'Change a provider; `api_key: null` removes the key' },
    })
    .delete(
      '/providers/:id',
      async ({ principal, params, set }) => {
        await providers.remove(principal, params.id)
        set.status = 204
      },
      { auth: true, params: idParams, response: { 204: z.void(), ...problems(401, 403, 404, 422, 429) }, detail: { summary: 'Delete a provider and its models' } },
    )
    .post('/providers/:id/test', async ({ principal, params }) => toProviderTestDto(await providers.test(principal, params.id)), {
      auth: true,
      params: idParams,
      response: { 200: providerTestSchema, ...problems(401, 404, 422, 429) },
      detail: { summary: 'Test the connection: a failing upstream is ok: false, not an error' },
    })
    .post('/providers/:id/sync-models', ({ principal, params }) => providers.syncModels(principal, params.id), {
      auth: true,
      params: idParams,
      response: { 200: syncResultSchema, ...problems(401, 403, 404, 422, 429, 502) },
      detail: { summary: "Add the upstream's models to the catalogue (existing ones kept)" },
    })
    .get(
      '/models',
      async ({ principal, query }) => {
        const { rows, total } = await providers.listModels(principal, { providerId: query.provider_id, q: query.q, limit: query.limit, offset: query.offset })
        return pageOf(rows.map((r) => toModelDto(r.model, r.providerName)), total, query)
      },
      {
        auth: true,
        query: modelListQuery,
        response: { 200: page(modelSchema), ...problems(401, 422, 429) },
        detail: { summary: 'The model catalogue you can use' },
      },
    )
    .post(
      '/models',
      async ({ principal, body, set }) => {
        const { model, provider } = await providers.createModel(principal, fromModelBody(body))
        set.status = 201
        set.headers.location = `/api/v1/models/${model.id}`
        return toModelDto(model, provider.name)
      },
      { auth: true, body: modelBody, response: { 201: modelSchema, ...problems(401, 403, 404, 409, 422, 429) }, detail: { summary: 'Add a model to a provider you may change' } },
    )
    .get(
      '/models/:id',
      async ({ principal, params }) => {
        const { model, provider } = await providers.modelOf(principal, params.id)
        return toModelDto(model, provider.name)
      },
      { auth: true, params: idParams, response: { 200: modelSchema, ...problems(401, 404, 422, 429) } },
    )
    .patch(
      '/models/:id',
      async ({ principal, params, body }) => {
        const { model, provider } = await providers.updateModel(principal, params.id, fromModelPatch(body))
        return toModelDto(model, provider.name)
      },
      { auth: true, params: idParams, body: modelPatch, response: { 200: modelSchema, ...problems(401, 403, 404, 409, 422, 429) } },
    )
    .delete(
      '/models/:id',
      async ({ principal, params, set }) => {
        await providers.removeModel(principal, params.id)
        set.status = 204
      },
      { auth: true, params: idParams, response: { 204: z.void(), ...problems(401, 403, 404, 422, 429) } },
    )
    .post('/models/:id/test', async ({ principal, params }) => toModelTestDto(await providers.testModel(principal, params.id)), {
      auth: true,
      params: idParams,
      response: { 200: modelTestSchema, ...problems(401, 404, 422, 429) },
      detail: { summary: 'A one-token call through the real streaming path' },
    })
}
