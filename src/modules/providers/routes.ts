/** @module /api/v1/providers and /api/v1/models (API.md §5). */
import { Elysia } from 'elysia'
import { z } from 'zod'
import { isoDate, listQuery, page, pageOf, problemSchema } from '../../lib/schemas.ts'
import type { authPlugin } from '../../plugins/auth.ts'
import { idParams } from '../../lib/schemas.ts'
import { toModel, toProvider, type ProvidersService } from './service.ts'

const providerType = z.enum(['openai', 'anthropic', 'google', 'openai_compatible'])
const httpUrl = z.url({ protocol: /^https?$/ }).max(2048)
const headerMap = z.record(z.string().regex(/^[A-Za-z0-9-]{1,100}$/, 'a header name'), z.string().max(4096))

const providerSchema = z
  .object({ id: z.string(), name: z.string(), type: providerType, base_url: z.string().nullable(), api_key_hint: z.string().nullable(), scope: z.enum(['global', 'personal']), is_default: z.boolean(), timeout_ms: z.number().int(), created_at: isoDate })
  .meta({ id: 'Provider' })
const providerBody = z.object({
  name: z.string().trim().min(1).max(100),
  type: providerType,
  base_url: httpUrl.nullable().optional(),
  api_key: z.string().min(1).max(4096).nullable().optional(),
  scope: z.enum(['global', 'personal']).optional(),
  is_default: z.boolean().optional(),
  timeout_ms: z.number().int().min(1000).max(600_000).optional(),
  headers: headerMap.nullable().optional(),
})
const modelSchema = z
  .object({
    id: z.string(), provider_id: z.string(), provider_name: z.string(), name: z.string(), model_id: z.string(), context_window: z.number().int().nullable(), max_output_tokens: z.number().int().nullable(),
    supports_stream: z.boolean(), supports_tools: z.boolean(), supports_vision: z.boolean(), input_price: z.number(), output_price: z.number(), is_default: z.boolean(), is_available: z.boolean(),
  })
  .meta({ id: 'Model' })
const modelFields = {
  name: z.string().trim().min(1).max(200),
  model_id: z.string().trim().min(1).max(200),
  context_window: z.number().int().positive().max(100_000_000).nullable(),
  max_output_tokens: z.number().int().positive().max(100_000_000).nullable(),
  supports_stream: z.boolean(),
  supports_tools: z.boolean(),
  supports_vision: z.boolean(),
  input_price: z.number().min(0).max(1e9),
  output_price: z.number().min(0).max(1e9),
  is_default: z.boolean(),
  is_available: z.boolean(),
}
const modelCreate = z.object(modelFields).partial().extend({ provider_id: z.string().min(1).max(64), model_id: modelFields.model_id })
const problems = { 401: problemSchema, 403: problemSchema, 404: problemSchema, 409: problemSchema, 422: problemSchema, 502: problemSchema }

export function providerRoutes(deps: { providers: ProvidersService; authPlugin: ReturnType<typeof authPlugin> }) {
  const { providers } = deps
  return new Elysia({ name: 'hearth.routes.providers', prefix: '/api/v1', detail: { tags: ['Providers and models'] } })
    .use(deps.authPlugin)
    .get(
      '/providers',
      async ({ principal, query }) => {
        const { rows, total } = await providers.list(principal, query)
        return pageOf(rows.map(toProvider), total, query)
      },
      {
      auth: true,
      query: listQuery.extend({ q: z.string().max(100).optional(), scope: z.enum(['global', 'personal']).optional() }),
      response: { 200: page(providerSchema), ...problems },
      detail: { summary: 'Providers you can use: global ones and your own' },
      },
    )
    .post(
      '/providers',
      async ({ principal, body, set }) => {
        const row = await providers.create(principal, body)
        set.status = 201
        set.headers.location = `/api/v1/providers/${row.id}`
        return toProvider(row)
      },
      { auth: true, body: providerBody, response: { 201: providerSchema, ...problems }, detail: { summary: 'Add a provider (global: admins only); the API key is stored encrypted and never returned' } },
    )
    .get('/providers/:id', async ({ principal, params }) => toProvider(await providers.get(principal, params.id)), { auth: true, params: idParams, response: { 200: providerSchema, ...problems } })
    .patch('/providers/:id', async ({ principal, params, body }) => toProvider(await providers.update(principal, params.id, body)), {
      auth: true,
      params: idParams,
      body: providerBody.omit({ type: true, scope: true }).partial(),
      response: { 200: providerSchema, ...problems },
      detail: { summary: 'Change a provider; `api_key: null` removes the key' },
    })
    .delete(
      '/providers/:id',
      async ({ principal, params, set }) => {
        await providers.remove(principal, params.id)
        set.status = 204
      },
      { auth: true, params: idParams, response: { 204: z.void(), ...problems }, detail: { summary: 'Delete a provider and its models' } },
    )
    .post('/providers/:id/test', ({ principal, params }) => providers.test(principal, params.id), {
      auth: true,
      params: idParams,
      response: { 200: z.object({ ok: z.boolean(), latency_ms: z.number().int(), models_found: z.number().int(), error: z.string().optional() }), ...problems },
      detail: { summary: "Test the connection: a failing upstream is ok: false, not an error" },
    })
    .post('/providers/:id/sync-models', ({ principal, params }) => providers.syncModels(principal, params.id), {
      auth: true,
      params: idParams,
      response: { 200: z.object({ added: z.number().int(), total: z.number().int() }), ...problems },
      detail: { summary: "Add the upstream's models to the catalogue (existing ones kept)" },
    })
    .get(
      '/models',
      async ({ principal, query }) => {
        const { rows, total } = await providers.listModels(principal, { providerId: query.provider_id, q: query.q, limit: query.limit, offset: query.offset })
        return pageOf(rows.map((r) => toModel(r.model, r.providerName)), total, query)
      },
      {
        auth: true,
        query: listQuery.extend({ provider_id: z.string().max(64).optional(), q: z.string().max(100).optional() }),
        response: { 200: page(modelSchema), ...problems },
        detail: { summary: 'The model catalogue you can use' },
      },
    )
    .post(
      '/models',
      async ({ principal, body, set }) => {
        const { model, provider } = await providers.createModel(principal, body)
        set.status = 201
        set.headers.location = `/api/v1/models/${model.id}`
        return toModel(model, provider.name)
      },
      { auth: true, body: modelCreate, response: { 201: modelSchema, ...problems }, detail: { summary: 'Add a model to a provider you may change' } },
    )
    .get(
      '/models/:id',
      async ({ principal, params }) => {
        const { model, provider } = await providers.modelOf(principal, params.id)
        return toModel(model, provider.name)
      },
      { auth: true, params: idParams, response: { 200: modelSchema, ...problems } },
    )
    .patch(
      '/models/:id',
      async ({ principal, params, body }) => {
        const { model, provider } = await providers.updateModel(principal, params.id, body)
        return toModel(model, provider.name)
      },
      { auth: true, params: idParams, body: z.object(modelFields).partial(), response: { 200: modelSchema, ...problems } },
    )
    .delete(
      '/models/:id',
      async ({ principal, params, set }) => {
        await providers.removeModel(principal, params.id)
        set.status = 204
      },
      { auth: true, params: idParams, response: { 204: z.void(), ...problems } },
    )
    .post('/models/:id/test', ({ principal, params }) => providers.testModel(principal, params.id), {
      auth: true,
      params: idParams,
      response: { 200: z.object({ ok: z.boolean(), latency_ms: z.number().int(), error: z.string().optional() }), ...problems },
      detail: { summary: 'A one-token call through the real streaming path' },
    })
}
