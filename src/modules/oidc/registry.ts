/**
 * @module The single sign-on providers: those of the environment (HEARTH_OIDC_<ID>_*, read-only) and
 * those admins add (table oidc_providers, the client secret encrypted). Each provider's discovery
 * (openid-client's Configuration: its metadata and, once fetched, its JWKS) is kept in memory until
 * an admin changes or deletes the provider, on every instance (the bus); a kept one is also checked
 * against the row's `updated_at`, so an instance never signs in through a provider as it was.
 */
import { asc, eq } from 'drizzle-orm'
import * as client from 'openid-client'
import type { OidcProviderSettings } from '../../config.ts'
import { createChannelCache, defineChannel, type Bus } from '../../db/bus.ts'
import type { Database } from '../../db/index.ts'
import { isUniqueViolation } from '../../db/errors.ts'
import type { Logger } from '../../lib/logger.ts'
import { readUpTo } from '../../lib/read-limited.ts'
import type { SecretBox } from '../../lib/secrets.ts'
import { envProviderReadOnly, oidcProviderNotFound, oidcProviderTaken, providerUnavailable } from './errors.ts'

/** a provider's answers (discovery, JWKS, tokens, userinfo) are cut off past this: an ID token is a few KiB */
export const PROVIDER_MAX_BYTES = 256 * 1024
/** how long one request to a provider may take, answer included */
export const PROVIDER_TIMEOUT_MS = 10_000

/** A provider from the environment (its settings as parsed) or added by an admin (the table's row). */
export interface OidcProvider extends OidcProviderSettings {
  source: 'env' | 'admin'
  createdAt: Date | null
  updatedAt: Date | null
}

export interface ProviderInput {
  id: string
  name: string
  issuer: string
  clientId: string
  clientSecret?: string | null
  scopes?: string
}

/** A provider and its discovered configuration. */
export interface ResolvedProvider {
  provider: OidcProvider
  config: client.Configuration
}

const providersChannel = defineChannel<{ id: string }>('oidc_providers')

/** A request to a provider failed on our side of the protocol: too slow, too large. */
class ProviderFetchError extends Error {
  override name = 'ProviderFetchError'
}

/**
 * openid-client's fetch for one provider: a deadline for the whole exchange (answer included) and a
 * size cap, so a slow or huge answer (a 1 MB ID token) fails cleanly instead of holding the request.
 */
export function boundedFetch(timeoutMs: number, maxBytes: number): client.CustomFetch {
  return async (url, options) => {
    const deadline = AbortSignal.timeout(timeoutMs)
    const signal = options.signal ? AbortSignal.any([options.signal, deadline]) : deadline
    try {
      const res = await fetch(url, { ...options, signal } as RequestInit)
      const body = await readUpTo(res.body, maxBytes, signal)
      if (body.truncated) throw new ProviderFetchError(`the answer of ${new URL(url).host} is larger than ${maxBytes} bytes`)
      const headers = new Headers(res.headers)
      headers.delete('content-encoding')
      headers.delete('content-length')
      return new Response(body.bytes as Uint8Array<ArrayBuffer>, { status: res.status, statusText: res.statusText, headers })
    } catch (error) {
      if (deadline.aborted) throw new ProviderFetchError(`${new URL(url).host} did not answer within ${timeoutMs} ms`)
      throw error
    }
  }
}

const fromEnv = (s: OidcProviderSettings): OidcProvider => ({ ...s, source: 'env', createdAt: null, updatedAt: null })

export function createProviderRegistry(deps: { database: Database; bus: Bus; secrets: SecretBox; logger: Logger; envProviders: OidcProviderSettings[]; timeoutMs?: number }) {
  const { database, secrets, logger } = deps
  const { db, t } = database
  const envProviders = new Map(deps.envProviders.map((s) => [s.id, fromEnv(s)]))
  const timeoutMs = deps.timeoutMs ?? PROVIDER_TIMEOUT_MS
  const configs = createChannelCache<string, ResolvedProvider, { id: string }>(deps.bus, providersChannel, { maxSize: 1000, staleKeys: ({ id }) => [id] })

  type Row = Database['t']['oidcProviders']['$inferSelect']
  const fromRow = async (r: Row): Promise<OidcProvider> => ({
    id: r.id,
    name: r.name,
    issuer: r.issuer,
    clientId: r.clientId,
    clientSecret: r.clientSecret ? await secrets.decrypt(r.clientSecret) : undefined,
    scopes: r.scopes,
    source: 'admin',
    createdAt: r.createdAt,
    updatedAt: r.updatedAt,
  })

  async function find(id: string): Promise<OidcProvider | undefined> {
    const env = envProviders.get(id)
    if (env) return env
    const [row] = await db.select().from(t.oidcProviders).where(eq(t.oidcProviders.id, id))
    return row ? fromRow(row) : undefined
  }

  async function get(id: string): Promise<OidcProvider> {
    const found = await find(id)
    if (!found) throw oidcProviderNotFound()
    return found
  }

  /** discovery through the bounded fetch; http issuers (a local Keycloak) need openid-client's allowInsecureRequests */
  async function discover(p: OidcProvider): Promise<client.Configuration> {
    const execute = [client.enableNonRepudiationChecks]
    if (new URL(p.issuer).protocol === 'http:') execute.push(client.allowInsecureRequests)
    try {
      return await client.discovery(new URL(p.issuer), p.clientId, p.clientSecret ? { client_secret: p.clientSecret } : undefined, p.clientSecret ? client.ClientSecretPost(p.clientSecret) : client.None(), {
        [client.customFetch]: boundedFetch(timeoutMs, PROVIDER_MAX_BYTES),
        timeout: Math.ceil(timeoutMs / 1000),
        execute,
      })
    } catch (error) {
      logger.warn('single sign-on: discovery failed', { provider_id: p.id, issuer: p.issuer, error: error instanceof Error ? error.message : String(error) })
      throw providerUnavailable(`The single sign-on provider ${JSON.stringify(p.name)} could not be reached or did not answer OpenID Connect discovery`)
    }
  }

  async function changed(id: string) {
    await configs.changed({ id })
  }

  return {
    /** every provider, the environment's first (by id), then the admins' by id */
    async list(): Promise<OidcProvider[]> {
      const rows = await db.select().from(t.oidcProviders).orderBy(asc(t.oidcProviders.id))
      return [...[...envProviders.values()].sort((a, b) => a.id.localeCompare(b.id)), ...(await Promise.all(rows.filter((r) => !envProviders.has(r.id)).map(fromRow)))]
    },

    find,
    get,

    /** The provider and its discovered configuration; 404 when there is none, 502 when discovery fails. */
    async resolve(id: string): Promise<ResolvedProvider> {
      const provider = await get(id)
      if (configs.has(id)) {
        const kept = configs.get(id)
        if (kept.provider.updatedAt?.getTime() === provider.updatedAt?.getTime()) return kept
      }
      // a kept configuration of an older version of the row is replaced (the bus may not have told us yet)
      await configs.changed({ id }).catch(() => {})
      return configs.load(id, async () => ({ provider, config: await discover(provider) }))
    },

    async create(input: ProviderInput): Promise<OidcProvider> {
      if (envProviders.has(input.id)) throw oidcProviderTaken(input.id)
      try {
        const [row] = await db
          .insert(t.oidcProviders)
          .values({ id: input.id, name: input.name, issuer: input.issuer, clientId: input.clientId, clientSecret: input.clientSecret ? await secrets.encrypt(input.clientSecret) : null, scopes: input.scopes ?? 'openid email profile' })
          .returning()
        return fromRow(row!)
      } catch (error) {
        if (isUniqueViolation(error)) throw oidcProviderTaken(input.id)
        throw error
      }
    },

    async update(id: string, patch: Partial<Omit<ProviderInput, 'id'>>): Promise<OidcProvider> {
      if (envProviders.has(id)) throw envProviderReadOnly()
      const values: Partial<Row> = { updatedAt: new Date() }
      if (patch.name !== undefined) values.name = patch.name
      if (patch.issuer !== undefined) values.issuer = patch.issuer
      if (patch.clientId !== undefined) values.clientId = patch.clientId
      if (patch.scopes !== undefined) values.scopes = patch.scopes
      if (patch.clientSecret !== undefined) values.clientSecret = patch.clientSecret ? await secrets.encrypt(patch.clientSecret) : null
      const [row] = await db.update(t.oidcProviders).set(values).where(eq(t.oidcProviders.id, id)).returning()
      if (!row) throw oidcProviderNotFound()
      await changed(id)
      return fromRow(row)
    },

    async remove(id: string) {
      if (envProviders.has(id)) throw envProviderReadOnly()
      const [row] = await db.delete(t.oidcProviders).where(eq(t.oidcProviders.id, id)).returning({ id: t.oidcProviders.id })
      if (!row) throw oidcProviderNotFound()
      await changed(id)
    },
  }
}

export type ProviderRegistry = ReturnType<typeof createProviderRegistry>
