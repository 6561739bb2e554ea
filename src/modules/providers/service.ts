/**
 * @module Providers and their models (docs/api.md §7). Global providers are the admin's and usable
 * by everyone; personal ones belong to one user and are invisible (404) to everyone else. API keys
 * and extra headers are encrypted at rest and never leave the server.
 */
import { and, asc, count, eq, isNull, or, sql, type SQL } from 'drizzle-orm'
import { createChannelCache, defineChannel, type Bus } from '../../db/bus.ts'
import type { Database } from '../../db/index.ts'
import { isUniqueViolation } from '../../db/errors.ts'
import { containsText, pageOfTable, pageWithTotal, type Page, type PageRequest } from '../../db/query.ts'
import type { OutboundCaller, OutboundGuard } from '../../lib/outbound.ts'
import type { SecretBox } from '../../lib/secrets.ts'
import { secretHint } from '../../lib/secrets.ts'
import { listModels, streamChat, UpstreamError, type ProviderConnection, type ProviderType } from '../../llm/index.ts'
import type { Principal } from '../auth/service.ts'
import {
  baseUrlRequired,
  globalModelAdminOnly,
  globalProviderAdminOnly,
  globalProviderCreateAdminOnly,
  modelIdTaken,
  modelListFailed,
  modelNotFound,
  providerNotFound,
} from './errors.ts'

type ProviderRow = Database['t']['providers']['$inferSelect']
type ModelRow = Database['t']['models']['$inferSelect']

export interface ProviderInput {
  name: string
  type: ProviderType
  baseUrl?: string | null
  /** `null` on a change removes the key */
  apiKey?: string | null
  scope?: 'global' | 'personal'
  isDefault?: boolean
  timeoutMs?: number
  /** extra request headers; `null` on a change removes them */
  headers?: Record<string, string> | null
}

/** What a change may set; type and scope are fixed at creation. */
export type ProviderChanges = Partial<Omit<ProviderInput, 'scope' | 'type'>>

export interface ModelInput {
  providerId: string
  /** what clients ask for; default: modelId */
  name?: string
  /** the upstream's name */
  modelId: string
  contextWindow?: number | null
  maxOutputTokens?: number | null
  supportsStream?: boolean
  supportsTools?: boolean
  supportsVision?: boolean
  inputPrice?: number
  outputPrice?: number
  isDefault?: boolean
  isAvailable?: boolean
}

export type ModelChanges = Partial<Omit<ModelInput, 'providerId'>>

/** What a model change may set, named as its columns are. */
const MODEL_FIELDS = ['name', 'modelId', 'contextWindow', 'maxOutputTokens', 'supportsStream', 'supportsTools', 'supportsVision', 'inputPrice', 'outputPrice', 'isDefault', 'isAvailable'] as const satisfies readonly (keyof ModelChanges & keyof ModelRow)[]

/** What a model sync did. */
export interface SyncResult {
  added: number
  total: number
}

/** The sync after a provider's creation: like a test, a failing upstream is `ok: false` with a readable error. */
export interface SyncOutcome extends SyncResult {
  ok: boolean
  error?: string
}

/** How long a provider's creation waits for its model list. */
const SYNC_ON_CREATE_MS = 10_000

/** A connection test: a failing upstream is `ok: false` with a readable error, never a thrown one. */
export interface ProviderTestResult {
  ok: boolean
  latencyMs: number
  modelsFound: number
  error?: string
}

export type ModelTestResult = Omit<ProviderTestResult, 'modelsFound'>

/** The readable message of a failed upstream call; anything else is not shown. */
const failureOf = (error: unknown, fallback: string) => (error instanceof UpstreamError ? error.message : fallback)

/** A model the caller may use, with everything needed to call it. */
export interface ResolvedModel {
  model: ModelRow
  provider: ProviderRow
}

/** Something in the model catalogue changed (a provider or model added, changed or removed): drop cached lookups. */
const catalogueChannel = defineChannel<Record<string, never>>('catalogue')

/** A global provider's base URL is an admin's choice: it is reached with an admin's rights, whoever calls it. */
const GLOBAL_PROVIDER_SENDER: OutboundCaller = { role: 'admin' }

export function createProvidersService(deps: { database: Database; bus: Bus; secrets: SecretBox; outbound: OutboundGuard }) {
  const { database, secrets, outbound } = deps
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

  /** decrypted connections (without their per-caller fetches), keyed by provider id and its last update */
  const connections = new Map<string, { updatedAt: number; connection: Omit<ProviderConnection, 'fetch' | 'fetchMedia'> }>()
  /** model lookups of the hot path, per caller, kept until the catalogue changes on any instance */
  const resolved = createChannelCache<string, ResolvedModel | undefined, Record<string, never>>(deps.bus, catalogueChannel, { maxSize: 10_000 })
  const catalogueChanged = () => resolved.changed({})

  async function getVisible(p: Principal, id: string): Promise<ProviderRow> {
    const [row] = await db.select().from(t.providers).where(and(eq(t.providers.id, id), visible(p)))
    if (!row) throw providerNotFound()
    return row
  }

  /** visible and changeable by p: personal ones by their owner, global ones by admins */
  async function getWritable(p: Principal, id: string): Promise<ProviderRow> {
    const row = await getVisible(p, id)
    if (row.scope === 'global' && p.role !== 'admin') throw globalProviderAdminOnly()
    return row
  }

  /** Only one default per owner (or among global providers). */
  async function clearOtherDefaultProviders(row: Pick<ProviderRow, 'id' | 'scope' | 'ownerId'>) {
    const owner = row.scope === 'global' ? isNull(t.providers.ownerId) : eq(t.providers.ownerId, row.ownerId!)
    await db.update(t.providers).set({ isDefault: false }).where(and(eq(t.providers.scope, row.scope), owner, sql`${t.providers.id} <> ${row.id}`))
  }

  /** a base URL at a private address is for admins (lib/outbound.ts) */
  const checkBaseUrl = (p: Principal, url: string | null | undefined) => outbound.check(p, url, 'base_url')

  const sealHeaders = async (headers: Record<string, string> | null | undefined) =>
    headers && Object.keys(headers).length ? secrets.encrypt(JSON.stringify(headers)) : null

  /**
   * How to call a provider, for `caller` (who can see it: its owner, or anyone for a global one).
   * A user's own provider is reached through the outbound guard with that user's rights, so its
   * address is checked again at every request: its name may resolve elsewhere since it was set.
   */
  async function connection(p: ProviderRow, caller: Principal): Promise<ProviderConnection> {
    const perCaller = { fetch: outbound.fetchFor(p.scope === 'global' ? GLOBAL_PROVIDER_SENDER : caller), fetchMedia: outbound.fetchFor(caller) }
    const cached = connections.get(p.id)
    if (cached && cached.updatedAt === p.updatedAt.getTime()) return { ...cached.connection, ...perCaller }
    const c = {
      type: p.type,
      baseUrl: p.baseUrl,
      apiKey: p.apiKeyEnc ? await secrets.decrypt(p.apiKeyEnc) : null,
      headers: p.headersEnc ? (JSON.parse(await secrets.decrypt(p.headersEnc)) as Record<string, string>) : {},
      timeoutMs: p.timeoutMs,
    }
    connections.set(p.id, { updatedAt: p.updatedAt.getTime(), connection: c })
    return { ...c, ...perCaller }
  }

  async function modelOf(p: Principal, id: string): Promise<ResolvedModel> {
    const [row] = await db.select({ model: t.models, provider: t.providers }).from(t.models).innerJoin(t.providers, eq(t.providers.id, t.models.providerId)).where(and(eq(t.models.id, id), visible(p)))
    if (!row) throw modelNotFound()
    return row
  }

  const asModelIdTaken = (error: unknown) => (isUniqueViolation(error) ? modelIdTaken() : error)

  /** Only admins change the models of global providers. */
  const assertModelWritable = (p: Principal, provider: ProviderRow) => {
    if (provider.scope === 'global' && p.role !== 'admin') throw globalModelAdminOnly()
  }

  /** Only one default model per provider. */
  const clearOtherDefaultModels = (providerId: string, id: string) =>
    db.update(t.models).set({ isDefault: false }).where(and(eq(t.models.providerId, providerId), sql`${t.models.id} <> ${id}`))

  /** The upstream's models that are not in the catalogue yet are added. */
  async function addModels(row: ProviderRow, found: Awaited<ReturnType<typeof listModels>>): Promise<SyncResult> {
    const added = found.length
      ? await db
          .insert(t.models)
          .values(found.map((m) => ({ providerId: row.id, name: m.id, modelId: m.id, contextWindow: m.contextWindow, maxOutputTokens: m.maxOutputTokens })))
          .onConflictDoNothing({ target: [t.models.providerId, t.models.modelId] })
          .returning({ id: t.models.id })
      : []
    if (added.length) await catalogueChanged()
    const [total] = await db.select({ n: count() }).from(t.models).where(eq(t.models.providerId, row.id))
    return { added: added.length, total: Number(total?.n ?? 0) }
  }

  return {
    connection,

    list(p: Principal, filter: PageRequest & { q?: string; scope?: 'global' | 'personal' }): Promise<Page<ProviderRow>> {
      const conditions: SQL[] = [visible(p)]
      if (filter.scope) conditions.push(eq(t.providers.scope, filter.scope))
      if (filter.q) conditions.push(containsText(t.providers.name, filter.q))
      return pageOfTable(db, t.providers, and(...conditions), [asc(t.providers.createdAt), asc(t.providers.id)], filter)
    },

    get: getVisible,

    async create(p: Principal, input: ProviderInput): Promise<ProviderRow> {
      // an admin's provider is for everyone unless they say otherwise; anyone else's is their own
      const scope = input.scope ?? (p.role === 'admin' ? 'global' : 'personal')
      if (scope === 'global' && p.role !== 'admin') throw globalProviderCreateAdminOnly()
      await checkBaseUrl(p, input.baseUrl)
      if (input.type === 'openai_compatible' && !input.baseUrl) throw baseUrlRequired()
      const [row] = await db
        .insert(t.providers)
        .values({
          name: input.name,
          type: input.type,
          baseUrl: input.baseUrl ?? null,
          apiKeyEnc: input.apiKey ? await secrets.encrypt(input.apiKey) : null,
          apiKeyHint: input.apiKey ? secretHint(input.apiKey) : null,
          headersEnc: await sealHeaders(input.headers),
          scope,
          ownerId: scope === 'personal' ? p.userId : null,
          isDefault: input.isDefault ?? false,
          timeoutMs: input.timeoutMs ?? 120_000,
        })
        .returning()
      if (row!.isDefault) await clearOtherDefaultProviders(row!)
      await catalogueChanged()
      return row!
    },

    async update(p: Principal, id: string, input: ProviderChanges): Promise<ProviderRow> {
      const before = await getWritable(p, id)
      await checkBaseUrl(p, input.baseUrl)
      const values: Partial<Database['t']['providers']['$inferInsert']> = { updatedAt: new Date() }
      if (input.name !== undefined) values.name = input.name
      if (input.baseUrl !== undefined) values.baseUrl = input.baseUrl
      if (input.timeoutMs !== undefined) values.timeoutMs = input.timeoutMs
      if (input.isDefault !== undefined) values.isDefault = input.isDefault
      if (input.apiKey !== undefined) {
        values.apiKeyEnc = input.apiKey ? await secrets.encrypt(input.apiKey) : null
        values.apiKeyHint = input.apiKey ? secretHint(input.apiKey) : null
      }
      if (input.headers !== undefined) values.headersEnc = await sealHeaders(input.headers)
      if (before.type === 'openai_compatible' && values.baseUrl === null) throw baseUrlRequired()
      const [row] = await db.update(t.providers).set(values).where(eq(t.providers.id, id)).returning()
      if (input.isDefault) await clearOtherDefaultProviders(row!)
      connections.delete(id)
      await catalogueChanged()
      return row!
    },

    async remove(p: Principal, id: string) {
      await getWritable(p, id)
      await db.delete(t.providers).where(eq(t.providers.id, id))
      connections.delete(id)
      await catalogueChanged()
    },

    /** Ask the provider for its model list: a failing upstream is `ok: false`, never an error. */
    async test(p: Principal, id: string): Promise<ProviderTestResult> {
      const row = await getVisible(p, id)
      const started = performance.now()
      try {
        const found = await listModels(await connection(row, p))
        return { ok: true, latencyMs: Math.round(performance.now() - started), modelsFound: found.length }
      } catch (error) {
        return { ok: false, latencyMs: Math.round(performance.now() - started), modelsFound: 0, error: failureOf(error, 'the provider could not be reached') }
      }
    },

    /** Add the provider's models that are not in the catalogue yet; existing ones are kept as they are. */
    async syncModels(p: Principal, id: string): Promise<SyncResult> {
      const row = await getWritable(p, id)
      let found
      try {
        found = await listModels(await connection(row, p))
      } catch (error) {
        throw modelListFailed(failureOf(error, 'the provider could not be reached'))
      }
      return addModels(row, found)
    },

    /** The sync that follows a provider's creation: bounded in time, and a failing upstream is `ok: false`, never an error. */
    async syncNewProvider(p: Principal, row: ProviderRow): Promise<SyncOutcome> {
      const bound = AbortSignal.timeout(SYNC_ON_CREATE_MS)
      let found
      try {
        found = await listModels(await connection(row, p), bound)
      } catch (error) {
        const reason = bound.aborted ? `the provider listed no models within ${SYNC_ON_CREATE_MS / 1000} s` : failureOf(error, 'the provider could not be reached')
        return { ok: false, added: 0, total: 0, error: `${reason}; add models with POST /api/v1/providers/${row.id}/sync-models or POST /api/v1/models` }
      }
      return { ok: true, ...(await addModels(row, found)) }
    },

    // ---- models ----

    listModels(p: Principal, filter: PageRequest & { providerId?: string; q?: string }): Promise<Page<{ model: ModelRow; providerName: string }>> {
      const conditions: SQL[] = [visible(p)]
      if (filter.providerId) conditions.push(eq(t.models.providerId, filter.providerId))
      if (filter.q) conditions.push(or(containsText(t.models.name, filter.q), containsText(t.models.modelId, filter.q))!)
      const where = and(...conditions)
      return pageWithTotal(
        db
          .select({ model: t.models, providerName: t.providers.name })
          .from(t.models)
          .innerJoin(t.providers, eq(t.providers.id, t.models.providerId))
          .where(where)
          .orderBy(asc(t.providers.createdAt), asc(t.models.name), asc(t.models.id))
          .limit(filter.limit)
          .offset(filter.offset),
        db.select({ n: count() }).from(t.models).innerJoin(t.providers, eq(t.providers.id, t.models.providerId)).where(where),
      )
    },

    modelOf,

    async createModel(p: Principal, input: ModelInput): Promise<ResolvedModel> {
      const provider = await getWritable(p, input.providerId)
      try {
        const [row] = await db
          .insert(t.models)
          .values({
            providerId: provider.id,
            name: input.name ?? input.modelId,
            modelId: input.modelId,
            contextWindow: input.contextWindow ?? null,
            maxOutputTokens: input.maxOutputTokens ?? null,
            supportsStream: input.supportsStream ?? true,
            supportsTools: input.supportsTools ?? false,
            supportsVision: input.supportsVision ?? false,
            inputPrice: input.inputPrice ?? 0,
            outputPrice: input.outputPrice ?? 0,
            isDefault: input.isDefault ?? false,
            isAvailable: input.isAvailable ?? true,
          })
          .returning()
        if (row!.isDefault) await clearOtherDefaultModels(provider.id, row!.id)
        await catalogueChanged()
        return { model: row!, provider }
      } catch (error) {
        throw asModelIdTaken(error)
      }
    },

    async updateModel(p: Principal, id: string, input: ModelChanges): Promise<ResolvedModel> {
      const { provider } = await modelOf(p, id)
      assertModelWritable(p, provider)
      const values: Record<string, unknown> = { updatedAt: new Date() }
      for (const k of MODEL_FIELDS) if (input[k] !== undefined) values[k] = input[k]
      try {
        const [row] = await db.update(t.models).set(values).where(eq(t.models.id, id)).returning()
        if (input.isDefault) await clearOtherDefaultModels(provider.id, id)
        await catalogueChanged()
        return { model: row!, provider }
      } catch (error) {
        throw asModelIdTaken(error)
      }
    },

    async removeModel(p: Principal, id: string) {
      const { provider } = await modelOf(p, id)
      assertModelWritable(p, provider)
      await db.delete(t.models).where(eq(t.models.id, id))
      await catalogueChanged()
    },

    /** A one-token call through the real streaming path. */
    async testModel(p: Principal, id: string): Promise<ModelTestResult> {
      const { model, provider } = await modelOf(p, id)
      const started = performance.now()
      try {
        for await (const _ of streamChat(await connection(provider, p), { model: model.modelId, messages: [{ role: 'user', content: 'Reply with OK.' }], maxTokens: 5 })) void _
        return { ok: true, latencyMs: Math.round(performance.now() - started) }
      } catch (error) {
        return { ok: false, latencyMs: Math.round(performance.now() - started), error: failureOf(error, 'the model could not be called') }
      }
    },

    /** The model a caller means by `name` (gateway and chat): their own providers' first. */
    async resolve(p: Principal, name: string): Promise<ResolvedModel | undefined> {
      const key = `${p.userId}\0${name}`
      if (resolved.has(key)) return resolved.get(key)
      return resolved.load(key, async () => (await modelByName.execute({ name, user: p.userId }))[0])
    },

    /** The model used when nothing names one: a default model (the caller's own first), else the first available. Cached like resolve. */
    async defaultModel(p: Principal): Promise<ResolvedModel | undefined> {
      const key = `${p.userId}\0`
      if (resolved.has(key)) return resolved.get(key)
      return resolved.load(key, async () => {
        const [row] = await db
          .select({ model: t.models, provider: t.providers })
          .from(t.models)
          .innerJoin(t.providers, eq(t.providers.id, t.models.providerId))
          .where(and(visible(p), eq(t.models.isAvailable, true)))
          .orderBy(sql`CASE WHEN ${t.models.isDefault} THEN 0 ELSE 1 END`, sql`CASE WHEN ${t.providers.scope} = 'personal' THEN 0 ELSE 1 END`, asc(t.providers.createdAt), asc(t.models.createdAt))
          .limit(1)
        return row
      })
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
