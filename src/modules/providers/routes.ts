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
        return pageOf(rows.map((r) => toProviderDto(r, principal)), total, query)
      },
      {
        auth: true,
        query: providerListQuery,
        response: { 200: page(providerSchema), ...problems(401, 403, 422, 429) },
        detail: { summary: 'List providers', description: 'The global providers and your own personal ones; `q` searches names, `scope` filters. Never an API key: only its hint (`sk-...abcd`).' },
      },
    )
    .post(
      '/providers',
      async ({ principal, body, set }) => {
        const row = await providers.create(principal, fromProviderBody(body))
        const sync = body.sync_models === false ? undefined : await providers.syncNewProvider(principal, row)
        set.status = 201
        set.headers.location = `/api/v1/providers/${row.id}`
        const dto = toProviderDto(row, principal)
        return sync ? { ...dto, model_sync: toModelSyncDto(sync) } : dto
      },
      {
        auth: true,
        body: providerBody,
        response: { 201: providerCreatedSchema, ...problems(401, 403, 422, 429) },
        detail: {
          summary: 'Add a provider',
          description:
            '`scope` defaults to `global` for admins and `personal` for everyone else; only admins add `global` providers (`403`). Its models are synced at once (`model_sync` in the answer) unless `sync_models: false`. `api_key` and `headers` are write-only: stored encrypted, never returned. `base_url` defaults to the type\'s public API and is required for `openai_compatible`; a private or loopback address is refused for non-admins (`422`) unless the instance allows it.',
        },
      },
    )
    .get('/providers/:id', async ({ principal, params }) => toProviderDto(await providers.get(principal, params.id), principal), {
      auth: true,
      params: idParams,
      response: { 200: providerSchema, ...problems(401, 403, 404, 422, 429) },
      detail: { summary: 'Get a provider', description: "A global provider, or one of yours; another user's personal provider is `404`, for admins too." },
    })
    .patch('/providers/:id', async ({ principal, params, body }) => toProviderDto(await providers.update(principal, params.id, fromProviderPatch(body)), principal), {
      auth: true,
      params: idParams,
      body: providerPatch,
      response: { 200: providerSchema, ...problems(401, 403, 404, 422, 429) },
      detail: { summary: 'Change a provider', description: 'The fields sent are set; `api_key: null` removes the key. Setting `is_default` clears it on your other providers (or the other global ones). Global providers: admins only (`403`).' },
    })
    .delete(
      '/providers/:id',
      async ({ principal, params, set }) => {
        await providers.remove(principal, params.id)
        set.status = 204
      },
      { auth: true, params: idParams, response: { 204: z.void(), ...problems(401, 403, 404, 422, 429) }, detail: { summary: 'Delete a provider', description: 'The provider and its models are deleted. Global providers: admins only (`403`).' } },
    )
    .post('/providers/:id/test', async ({ principal, params }) => toProviderTestDto(await providers.test(principal, params.id)), {
      auth: true,
      params: idParams,
      response: { 200: providerTestSchema, ...problems(401, 403, 404, 422, 429) },
      detail: { summary: 'Test a provider', description: 'Asks the provider for its model list. A failing upstream is `ok: false` with a readable `error`, never a 5xx.' },
    })
    .post('/providers/:id/sync-models', ({ principal, params }) => providers.syncModels(principal, params.id), {
      auth: true,
      params: idParams,
      response: { 200: syncResultSchema, ...problems(401, 403, 404, 422, 429, 502) },
      detail: { summary: 'Sync models', description: "The upstream's models missing from the catalogue are added (named after their upstream id); existing ones are kept as they are. `502 UPSTREAM_ERROR` when the upstream cannot be listed. Global providers: admins only (`403`)." },
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
        response: { 200: page(modelSchema), ...problems(401, 403, 422, 429) },
        detail: { summary: 'List models', description: 'The models of the providers you can use; `provider_id` and `q` filter (an unknown `provider_id` gives an empty page).' },
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
      { auth: true, body: modelBody, response: { 201: modelSchema, ...problems(401, 403, 404, 409, 422, 429) }, detail: {
          summary: 'Add a model',
          description:
            '`model_id` is the upstream\'s name, unique per provider (`409`); `name` (default: `model_id`) is what clients ask for in chat and at `/v1`. Prices are per million tokens. `404` for a `provider_id` you cannot see, `403` for a global provider unless you are an admin.',
        },
      },
    )
    .get(
      '/models/:id',
      async ({ principal, params }) => {
        const { model, provider } = await providers.modelOf(principal, params.id)
        return toModelDto(model, provider.name)
      },
      { auth: true, params: idParams, response: { 200: modelSchema, ...problems(401, 403, 404, 422, 429) }, detail: { summary: 'Get a model', description: 'A model of a provider you can use.' } },
    )
    .patch(
      '/models/:id',
      async ({ principal, params, body }) => {
        const { model, provider } = await providers.updateModel(principal, params.id, fromModelPatch(body))
        return toModelDto(model, provider.name)
      },
      {
        auth: true,
        params: idParams,
        body: modelPatch,
        response: { 200: modelSchema, ...problems(401, 403, 404, 409, 422, 429) },
        detail: { summary: 'Change a model', description: 'The fields sent are set. `is_available: false` hides the model from `/v1/models` and refuses it at the gateway. Models of global providers: admins only (`403`).' },
      },
    )
    .delete(
      '/models/:id',
      async ({ principal, params, set }) => {
        await providers.removeModel(principal, params.id)
        set.status = 204
      },
      { auth: true, params: idParams, response: { 204: z.void(), ...problems(401, 403, 404, 422, 429) }, detail: { summary: 'Delete a model', description: 'Models of global providers: admins only (`403`).' } },
    )
    .post('/models/:id/test', async ({ principal, params }) => toModelTestDto(await providers.testModel(principal, params.id)), {
      auth: true,
      params: idParams,
      response: { 200: modelTestSchema, ...problems(401, 403, 404, 422, 429) },
      detail: { summary: 'Test a model', description: 'A one-token call through the real streaming path. A failing upstream is `ok: false` with a readable `error`, never a 5xx.' },
    })
}
