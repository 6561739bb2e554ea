/**
 * @module The wire of providers and models (docs/api.md §7): request and response schemas, and the
 * mapping between the snake_case wire and the service's camelCase values.
 */
import { z } from 'zod'
import type { Database } from '../../db/index.ts'
import { isoDate, listQuery } from '../../lib/schemas.ts'
import type { Principal } from '../auth/service.ts'
import type { ModelChanges, ModelInput, ModelTestResult, ProviderChanges, ProviderInput, ProviderTestResult, SyncOutcome } from './service.ts'

type ProviderRow = Database['t']['providers']['$inferSelect']
type ModelRow = Database['t']['models']['$inferSelect']

const providerType = z.enum(['openai', 'anthropic', 'google', 'openai_compatible'])
const scope = z.enum(['global', 'personal'])
const httpUrl = z.url({ protocol: /^https?$/ }).max(2048)
const headerMap = z.record(z.string().regex(/^[A-Za-z0-9-]{1,100}$/, 'a header name'), z.string().max(4096))

// ---- providers ----

export const providerSchema = z
  .object({ id: z.string(), name: z.string(), type: providerType, base_url: z.string().nullable().meta({ description: "the API root; null on a global provider for non-admins (and on one that uses its type's default)" }), api_key_hint: z.string().nullable(), scope, is_default: z.boolean(), timeout_ms: z.number().int(), created_at: isoDate })
  .meta({ id: 'Provider' })

export const providerBody = z.object({
  name: z.string().trim().min(1).max(100),
  type: providerType,
  base_url: httpUrl.nullable().optional(),
  api_key: z.string().min(1).max(4096).nullable().optional(),
  scope: scope.optional(),
  is_default: z.boolean().optional(),
  timeout_ms: z.number().int().min(1000).max(600_000).optional(),
  headers: headerMap.nullable().optional(),
  /** default true: the upstream's models are added to the catalogue at once */
  sync_models: z.boolean().optional(),
})
/** type and scope are fixed at creation (and ignored here) */
export const providerPatch = providerBody.omit({ type: true, scope: true, sync_models: true }).partial()

export const providerListQuery = listQuery.extend({ q: z.string().max(100).optional(), scope: scope.optional() })

export const providerTestSchema = z.object({ ok: z.boolean(), latency_ms: z.number().int(), models_found: z.number().int(), error: z.string().optional() })
export const syncResultSchema = z.object({ added: z.number().int(), total: z.number().int() })
/** what the model sync after creation did; a failing upstream is `ok: false` (the provider is created all the same) */
export const modelSyncSchema = syncResultSchema.extend({ ok: z.boolean(), error: z.string().optional() })
/** the 201 of POST /providers: the provider, and `model_sync` unless `sync_models: false` */
export const providerCreatedSchema = providerSchema.extend({ model_sync: modelSyncSchema.optional() })

/**
 * A provider as `viewer` may see it. A global provider's `base_url` is for admins: it tells where
 * the instance sends its calls (often an address inside the network), so others get `null` — the
 * field stays, so the schema is one for everyone.
 */
export const toProviderDto = (p: ProviderRow, viewer: Pick<Principal, 'role'>): z.infer<typeof providerSchema> => ({
  id: p.id,
  name: p.name,
  type: p.type,
  base_url: p.scope === 'global' && viewer.role !== 'admin' ? null : p.baseUrl,
  api_key_hint: p.apiKeyHint,
  scope: p.scope,
  is_default: p.isDefault,
  timeout_ms: p.timeoutMs,
  created_at: p.createdAt.toISOString(),
})

export const toModelSyncDto = (r: SyncOutcome): z.infer<typeof modelSyncSchema> => ({ ok: r.ok, added: r.added, total: r.total, error: r.error })

export const toProviderTestDto = (r: ProviderTestResult): z.infer<typeof providerTestSchema> => ({ ok: r.ok, latency_ms: r.latencyMs, models_found: r.modelsFound, error: r.error })

/** `null` (remove the key, the headers, the base URL) is kept apart from absent (leave as is). */
export const fromProviderPatch = (b: z.infer<typeof providerPatch>): ProviderChanges => ({
  name: b.name,
  baseUrl: b.base_url,
  apiKey: b.api_key,
  isDefault: b.is_default,
  timeoutMs: b.timeout_ms,
  headers: b.headers,
})

export const fromProviderBody = (b: z.infer<typeof providerBody>): ProviderInput => ({ ...fromProviderPatch(b), name: b.name, type: b.type, scope: b.scope })

// ---- models ----

export const modelSchema = z
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
export const modelPatch = z.object(modelFields).partial()
export const modelBody = modelPatch.extend({ provider_id: z.string().min(1).max(64), model_id: modelFields.model_id })

export const modelListQuery = listQuery.extend({ provider_id: z.string().max(64).optional(), q: z.string().max(100).optional() })

export const modelTestSchema = z.object({ ok: z.boolean(), latency_ms: z.number().int(), error: z.string().optional() })

export const toModelDto = (m: ModelRow, providerName: string): z.infer<typeof modelSchema> => ({
  id: m.id,
  provider_id: m.providerId,
  provider_name: providerName,
  name: m.name,
  model_id: m.modelId,
  context_window: m.contextWindow,
  max_output_tokens: m.maxOutputTokens,
  supports_stream: m.supportsStream,
  supports_tools: m.supportsTools,
  supports_vision: m.supportsVision,
  input_price: m.inputPrice,
  output_price: m.outputPrice,
  is_default: m.isDefault,
  is_available: m.isAvailable,
})

export const toModelTestDto = (r: ModelTestResult): z.infer<typeof modelTestSchema> => ({ ok: r.ok, latency_ms: r.latencyMs, error: r.error })

export const fromModelPatch = (b: z.infer<typeof modelPatch>): ModelChanges => ({
  name: b.name,
  modelId: b.model_id,
  contextWindow: b.context_window,
  maxOutputTokens: b.max_output_tokens,
  supportsStream: b.supports_stream,
  supportsTools: b.supports_tools,
  supportsVision: b.supports_vision,
  inputPrice: b.input_price,
  outputPrice: b.output_price,
  isDefault: b.is_default,
  isAvailable: b.is_available,
})

export const fromModelBody = (b: z.infer<typeof modelBody>): ModelInput => ({ ...fromModelPatch(b), providerId: b.provider_id, modelId: b.model_id })
