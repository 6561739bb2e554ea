/**
 * @module Providers and their models. Global providers are the admin's and usable by everyone;
 * personal ones belong to one user and are invisible (404) to everyone else. API keys and extra
 * headers are encrypted at rest and never leave the server.
 */
import { and, asc, count, eq, isNull, or, sql, type SQL } from 'drizzle-orm'
import type { Database } from '../../db/index.ts'
import { isUniqueViolation } from '../../db/errors.ts'
import { AppError, conflict, forbidden, notFound } from '../../lib/errors.ts'
import type { SecretBox } from '../../lib/secrets.ts'
import { secretHint } from '../../lib/secrets.ts'
import { reachesPrivate } from '../../lib/private-address.ts'
import { baseUrlOf, listModels, streamChat, UpstreamError, type ProviderConnection, type ProviderType } from '../../llm/index.ts'
import type { Principal } from '../auth/service.ts'

type ProviderRow = Database['t']['providers']['$inferSelect']
type ModelRow = Database['t']['models']['$inferSelect']

export interface ProviderInput {
  name: string
  type: ProviderType
  base_url?: string | null
  api_key?: string | null
  scope?: 'global' | 'personal'
  is_default?: boolean
  timeout_ms?: number
  headers?: Record<string, string> | null
}

export interface ModelInput {
  provider_id: string
  name?: string
  model_id: string
  context_window?: number | null
  max_output_tokens?: number | null
  supports_stream?: boolean
  supports_tools?: boolean
  supports_vision?: boolean
  input_price?: number
  output_price?: number
  is_default?: boolean
  is_available?: boolean
}

/** A model the caller may use, with everything needed to call it. */
export interface ResolvedModel {
  model: ModelRow
  provider: ProviderRow
}

export function toProvider(p: ProviderRow) {
  return {
    id: p.id,
    name: p.name,
    type: p.type,
    base_url: p.baseUrl,
    api_key_hint: p.apiKeyHint,
    scope: p.scope,
    is_default: p.isDefault,
    timeout_ms: p.timeoutMs,
    created_at: p.createdAt.toISOString(),
  }
}

export function toModel(m: ModelRow, providerName: string) {
  return {
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
  }
}

const escapeLike = (q: string) => `%${q.toLowerCase().replace(/[\\%_]/g, (c) => '\\' + c)}%`

export function createProvidersService(deps: { database: Database; secrets: SecretBox; allowPrivateUpstreams: boolean }) {
  const { database, secrets } = deps
  const { db, t } = database

  /** providers the principal can see */
  const visible = (p: Principal): SQL => or(eq(t.providers.scope, 'global'), and(eq(t.providers.scope, 'personal'), eq(t.providers.ownerId, p.userId)))!

  const modelByName = db
    .select({ model: t.models, provider: t.providers })
    .from(t.models)
    .innerJoin(t.providers, eq(t.providers.id, t.models.providerId))
    .where(
      and(
        eq(t.models.name, sql.placeholder('name')),
        eq(t.models.isAvailable, true),
        or(eq(t.providers.scope, 'global'), eq(t.providers.ownerId, sql.placeholder('user'))),
      ),
    )
    // the caller's own providers first, then defaults, then the oldest
    .orderBy(sql`CASE WHEN ${t.providers.scope} = 'personal' THEN 0 ELSE 1 END`, sql`CASE WHEN ${t.providers.isDefault} THEN 0 ELSE 1 END`, asc(t.models.createdAt))
    .limit(1)
    .prepare('models_by_name')

  /** decrypted connections, keyed by provider id and its last update */
  const connections = new Map<string, { updatedAt: number; connection: ProviderConnection }>()
  /** model-name lookups of the hot path, per caller; emptied by every catalogue change made here, else kept 5 s */
  const resolved = new Map<string, { value: ResolvedModel | undefined; at: number }>()
  const RESOLVE_TTL_MS = 5_000
  const catalogueChanged = () => resolved.clear()

  async function getVisible(p: Principal, id: string): Promise<ProviderRow> {
    const [row] = await db.select().from(t.providers).where(and(eq(t.providers.id, id), visible(p)))
    if (!row) throw notFound('Provider')
    return row
  }

  /** visible and changeable by p: personal ones by their owner, global ones by admins */
  async function getWritable(p: Principal, id: string): Promise<ProviderRow> {
    const row = await getVisible(p, id)
    if (row.scope === 'global' && p.role !== 'admin') throw forbidden('Only admins change global providers')
    return row
  }

  /** Only one default per owner (or among global providers). */
  async function clearOtherDefaults(q: typeof db, row: Pick<ProviderRow, 'id' | 'scope' | 'ownerId'>) {
    const owner = row.scope === 'global' ? isNull(t.providers.ownerId) : eq(t.providers.ownerId, row.ownerId!)
    await q.update(t.providers).set({ isDefault: false }).where(and(eq(t.providers.scope, row.scope), owner, sql`${t.providers.id} <> ${row.id}`))
  }

  /**
   * Only admins may aim the server at loopback or private addresses, by IP or by a name that
   * resolves to one (unless the instance allows it). Checked when a base_url is set, and again
   * before every call to a user's own provider, since a name can be made to resolve elsewhere later.
   */
  const mayReachPrivate = (p: Principal) => p.role === 'admin' || deps.allowPrivateUpstreams
  const checkBaseUrl = async (p: Principal, url: string | null | undefined) => {
    if (url && !mayReachPrivate(p) && (await reachesPrivate(url)))
      throw new AppError(422, 'VALIDATION_ERROR', 'Only admins may use loopback or private addresses', [{ path: 'base_url', message: 'loopback and private addresses (also by a name that resolves to one) are for admins' }])
  }

  const sealHeaders = async (headers: Record<string, string> | null | undefined) =>
    headers && Object.keys(headers).length ? secrets.encrypt(JSON.stringify(headers)) : null

  /** How to call a provider, for `caller` (who can see it: its owner, or anyone for a global one). */
  async function connection(p: ProviderRow, caller: Principal): Promise<ProviderConnection> {
    if (p.scope === 'personal' && !mayReachPrivate(caller) && (await reachesPrivate(baseUrlOf(p))))
      throw new UpstreamError('the provider is at a loopback or private address, which only admins may use', undefined, 'network')
    const cached = connections.get(p.id)
    if (cached && cached.updatedAt === p.updatedAt.getTime()) return cached.connection
    const c: ProviderConnection = {
      type: p.type,
      baseUrl: p.baseUrl,
      apiKey: p.apiKeyEnc ? await secrets.decrypt(p.apiKeyEnc) : null,
      headers: p.headersEnc ? (JSON.parse(await secrets.decrypt(p.headersEnc)) as Record<string, string>) : {},
      timeoutMs: p.timeoutMs,
    }
    connections.set(p.id, { updatedAt: p.updatedAt.getTime(), connection: c })
    return c
  }

  async function modelOf(p: Principal, id: string): Promise<ResolvedModel> {
    const [row] = await db.select({ model: t.models, provider: t.providers }).from(t.models).innerJoin(t.providers, eq(t.providers.id, t.models.providerId)).where(and(eq(t.models.id, id), visible(p)))
    if (!row) throw notFound('Model')
    return row
  }

  const namesTaken = (error: unknown) => {
    if (isUniqueViolation(error)) return conflict('This provider already has that model')
    return error
  }

  return {
    connection,

    async list(p: Principal, filter: { q?: string; scope?: 'global' | 'personal'; limit: number; offset: number }) {
      const conditions: SQL[] = [visible(p)]
      if (filter.scope) conditions.push(eq(t.providers.scope, filter.scope))
      if (filter.q) conditions.push(sql`lower(${t.providers.name}) LIKE ${escapeLike(filter.q)} ESCAPE '\\'`)
      const where = and(...conditions)
      const [rows, [total]] = await Promise.all([
        db.select().from(t.providers).where(where).orderBy(asc(t.providers.createdAt), asc(t.providers.id)).limit(filter.limit).offset(filter.offset),
        db.select({ n: count() }).from(t.providers).where(where),
      ])
      return { rows, total: Number(total?.n ?? 0) }
    },

    get: getVisible,

    async create(p: Principal, input: ProviderInput): Promise<ProviderRow> {
      const scope = input.scope ?? 'personal'
      if (scope === 'global' && p.role !== 'admin') throw forbidden('Only admins create global providers')
      await checkBaseUrl(p, input.base_url)
      if (input.type === 'openai_compatible' && !input.base_url) throw new AppError(422, 'VALIDATION_ERROR', 'An openai_compatible provider needs a base_url', [{ path: 'base_url', message: 'required for openai_compatible' }])
      const [row] = await db
        .insert(t.providers)
        .values({
          name: input.name,
          type: input.type,
          baseUrl: input.base_url ?? null,
          apiKeyEnc: input.api_key ? await secrets.encrypt(input.api_key) : null,
          apiKeyHint: input.api_key ? secretHint(input.api_key) : null,
          headersEnc: await sealHeaders(input.headers),
          scope,
          ownerId: scope === 'personal' ? p.userId : null,
          isDefault: input.is_default ?? false,
          timeoutMs: input.timeout_ms ?? 120_000,
        })
        .returning()
      if (row!.isDefault) await clearOtherDefaults(db, row!)
      catalogueChanged()
      return row!
    },

    async update(p: Principal, id: string, input: Partial<Omit<ProviderInput, 'scope' | 'type'>>): Promise<ProviderRow> {
      const before = await getWritable(p, id)
      await checkBaseUrl(p, input.base_url)
      const values: Partial<Database['t']['providers']['$inferInsert']> = { updatedAt: new Date() }
      if (input.name !== undefined) values.name = input.name
      if (input.base_url !== undefined) values.baseUrl = input.base_url
      if (input.timeout_ms !== undefined) values.timeoutMs = input.timeout_ms
      if (input.is_default !== undefined) values.isDefault = input.is_default
      if (input.api_key !== undefined) {
        values.apiKeyEnc = input.api_key ? await secrets.encrypt(input.api_key) : null
        values.apiKeyHint = input.api_key ? secretHint(input.api_key) : null
      }
      if (input.headers !== undefined) values.headersEnc = await sealHeaders(input.headers)
      if (before.type === 'openai_compatible' && values.baseUrl === null) throw new AppError(422, 'VALIDATION_ERROR', 'An openai_compatible provider needs a base_url', [{ path: 'base_url', message: 'required for openai_compatible' }])
      const [row] = await db.update(t.providers).set(values).where(eq(t.providers.id, id)).returning()
      if (input.is_default) await clearOtherDefaults(db, row!)
      connections.delete(id)
      catalogueChanged()
      return row!
    },

    async remove(p: Principal, id: string) {
      await getWritable(p, id)
      await db.delete(t.providers).where(eq(t.providers.id, id))
      connections.delete(id)
      catalogueChanged()
    },

    /** Ask the provider for its model list: a failing upstream is `ok: false`, never an error. */
    async test(p: Principal, id: string) {
      const row = await getVisible(p, id)
      const started = performance.now()
      try {
        const found = await listModels(await connection(row, p))
        return { ok: true, latency_ms: Math.round(performance.now() - started), models_found: found.length }
      } catch (error) {
        return { ok: false, latency_ms: Math.round(performance.now() - started), models_found: 0, error: error instanceof UpstreamError ? error.message : 'the provider could not be reached' }
      }
    },

    /** Add the provider's models that are not in the catalogue yet; existing ones are kept as they are. */
    async syncModels(p: Principal, id: string) {
      const row = await getWritable(p, id)
      let found
      try {
        found = await listModels(await connection(row, p))
      } catch (error) {
        throw new AppError(502, 'UPSTREAM_ERROR', error instanceof UpstreamError ? error.message : 'the provider could not be reached')
      }
      const added = found.length
        ? await db
            .insert(t.models)
            .values(found.map((m) => ({ providerId: row.id, name: m.id, modelId: m.id, contextWindow: m.contextWindow, maxOutputTokens: m.maxOutputTokens })))
            .onConflictDoNothing({ target: [t.models.providerId, t.models.modelId] })
            .returning({ id: t.models.id })
        : []
      if (added.length) catalogueChanged()
      const [total] = await db.select({ n: sql<number>`count(*)` }).from(t.models).where(eq(t.models.providerId, row.id))
      return { added: added.length, total: Number(total?.n ?? 0) }
    },

    // ---- models ----

    async listModels(p: Principal, filter: { providerId?: string; q?: string; limit: number; offset: number }) {
      const conditions: SQL[] = [visible(p)]
      if (filter.providerId) conditions.push(eq(t.models.providerId, filter.providerId))
      if (filter.q) conditions.push(or(sql`lower(${t.models.name}) LIKE ${escapeLike(filter.q)} ESCAPE '\\'`, sql`lower(${t.models.modelId}) LIKE ${escapeLike(filter.q)} ESCAPE '\\'`)!)
      const where = and(...conditions)
      const [rows, [total]] = await Promise.all([
        db
          .select({ model: t.models, providerName: t.providers.name })
          .from(t.models)
          .innerJoin(t.providers, eq(t.providers.id, t.models.providerId))
          .where(where)
          .orderBy(asc(t.providers.createdAt), asc(t.models.name), asc(t.models.id))
          .limit(filter.limit)
          .offset(filter.offset),
        db.select({ n: count() }).from(t.models).innerJoin(t.providers, eq(t.providers.id, t.models.providerId)).where(where),
      ])
      return { rows, total: Number(total?.n ?? 0) }
    },

    modelOf,

    async createModel(p: Principal, input: ModelInput) {
      const provider = await getWritable(p, input.provider_id)
      try {
        const [row] = await db
          .insert(t.models)
          .values({
            providerId: provider.id,
            name: input.name ?? input.model_id,
            modelId: input.model_id,
            contextWindow: input.context_window ?? null,
            maxOutputTokens: input.max_output_tokens ?? null,
            supportsStream: input.supports_stream ?? true,
            supportsTools: input.supports_tools ?? false,
            supportsVision: input.supports_vision ?? false,
            inputPrice: input.input_price ?? 0,
            outputPrice: input.output_price ?? 0,
            isDefault: input.is_default ?? false,
            isAvailable: input.is_available ?? true,
          })
          .returning()
        if (row!.isDefault) await db.update(t.models).set({ isDefault: false }).where(and(eq(t.models.providerId, provider.id), sql`${t.models.id} <> ${row!.id}`))
        catalogueChanged()
        return { model: row!, provider }
      } catch (error) {
        throw namesTaken(error)
      }
    },

    async updateModel(p: Principal, id: string, input: Partial<Omit<ModelInput, 'provider_id'>>) {
      const { provider } = await modelOf(p, id)
      if (provider.scope === 'global' && p.role !== 'admin') throw forbidden('Only admins change models of global providers')
      const map: Record<string, keyof ModelRow> = {
        name: 'name', model_id: 'modelId', context_window: 'contextWindow', max_output_tokens: 'maxOutputTokens', supports_stream: 'supportsStream', supports_tools: 'supportsTools',
        supports_vision: 'supportsVision', input_price: 'inputPrice', output_price: 'outputPrice', is_default: 'isDefault', is_available: 'isAvailable',
      }
      const values: Record<string, unknown> = { updatedAt: new Date() }
      for (const [k, v] of Object.entries(input)) if (v !== undefined && map[k]) values[map[k]] = v
      try {
        const [row] = await db.update(t.models).set(values).where(eq(t.models.id, id)).returning()
        if (input.is_default) await db.update(t.models).set({ isDefault: false }).where(and(eq(t.models.providerId, provider.id), sql`${t.models.id} <> ${id}`))
        catalogueChanged()
        return { model: row!, provider }
      } catch (error) {
        throw namesTaken(error)
      }
    },

    async removeModel(p: Principal, id: string) {
      const { provider } = await modelOf(p, id)
      if (provider.scope === 'global' && p.role !== 'admin') throw forbidden('Only admins change models of global providers')
      await db.delete(t.models).where(eq(t.models.id, id))
      catalogueChanged()
    },

    /** A one-token call through the real streaming path. */
    async testModel(p: Principal, id: string) {
      const { model, provider } = await modelOf(p, id)
      const started = performance.now()
      try {
        for await (const _ of streamChat(await connection(provider, p), { model: model.modelId, messages: [{ role: 'user', content: 'Reply with OK.' }], maxTokens: 5 })) void _
        return { ok: true, latency_ms: Math.round(performance.now() - started) }
      } catch (error) {
        return { ok: false, latency_ms: Math.round(performance.now() - started), error: error instanceof UpstreamError ? error.message : 'the model could not be called' }
      }
    },

    /** The model a caller means by `name` (gateway and chat): their own providers' first. */
    async resolve(p: Principal, name: string): Promise<ResolvedModel | undefined> {
      const key = `${p.userId}\0${name}`
      const now = Date.now()
      const hit = resolved.get(key)
      if (hit && now - hit.at < RESOLVE_TTL_MS) return hit.value
      const [row] = await modelByName.execute({ name, user: p.userId })
      if (resolved.size >= 10_000) resolved.clear()
      resolved.set(key, { value: row, at: now })
      return row
    },

    /** The model used when nothing names one: a default model (the caller's own first), else the first available. Cached like resolve. */
    async defaultModel(p: Principal): Promise<ResolvedModel | undefined> {
      const key = `${p.userId}\0`
      const hit = resolved.get(key)
      if (hit && Date.now() - hit.at < RESOLVE_TTL_MS) return hit.value
      const [row] = await db
        .select({ model: t.models, provider: t.providers })
        .from(t.models)
        .innerJoin(t.providers, eq(t.providers.id, t.models.providerId))
        .where(and(visible(p), eq(t.models.isAvailable, true)))
        .orderBy(sql`CASE WHEN ${t.models.isDefault} THEN 0 ELSE 1 END`, sql`CASE WHEN ${t.providers.scope} = 'personal' THEN 0 ELSE 1 END`, asc(t.providers.createdAt), asc(t.models.createdAt))
        .limit(1)
      resolved.set(key, { value: row, at: Date.now() })
      return row
    },

    /** Every model name the caller can use (for /v1/models). */
    async usableModels(p: Principal) {
      return db
        .select({ name: t.models.name, providerName: t.providers.name, createdAt: t.models.createdAt })
        .from(t.models)
        .innerJoin(t.providers, eq(t.providers.id, t.models.providerId))
        .where(and(visible(p), eq(t.models.isAvailable, true)))
        .orderBy(asc(t.models.name))
    },
  }
}

export type ProvidersService = ReturnType<typeof createProvidersService>
