/**
 * @module API keys (`hk_…`): shown once, stored as SHA-256, accepted where their scopes say —
 * `gateway` (/v1), `api` (the native API) — and never for managing credentials. Lookups are cached for a minute; deleting a key, or disabling or re-roling its owner, drops the
 * cache entry at once on every instance (the revocations service). `last_used_at` is written in a batch a minute.
 */
import { and, desc, eq, sql } from 'drizzle-orm'
import type { Database } from '../../db/index.ts'
import { randomToken, sha256 } from '../../lib/crypto.ts'
import { createLastUsed } from '../../lib/last-used.ts'
import type { Logger } from '../../lib/logger.ts'
import type { Role } from '../users/service.ts'
import { apiKeyExpired, apiKeyInvalid, apiKeyNotFound } from './errors.ts'
import type { Principal } from './service.ts'
import type { RevocationsService } from './revocations.ts'

const CACHE_TTL_MS = 60_000

/** Where a key is accepted: `gateway` — the OpenAI-compatible /v1; `api` — the native /api/v1, except credential management. */
export const API_KEY_SCOPES = ['gateway', 'api'] as const
export type ApiKeyScope = (typeof API_KEY_SCOPES)[number]
/** the scopes of a key created without any (and of every key made before scopes existed) */
export const DEFAULT_API_KEY_SCOPES: readonly ApiKeyScope[] = ['gateway', 'api']

/** An API key as its owner sees it (never the key itself, nor its hash). */
export type ApiKey = Omit<Database['t']['apiKeys']['$inferSelect'], 'keyHash'>

interface CachedKey {
  id: string
  userId: string
  role: Role
  scopes: readonly ApiKeyScope[]
  expiresAt: number | null
  cachedAt: number
}

export function createApiKeysService(deps: { database: Database; revocations: RevocationsService; logger: Logger }) {
  const { database, revocations, logger } = deps
  const { db, t } = database
  const cache = new Map<string, CachedKey>()
  const lastUsed = createLastUsed('api key', (id, at) => db.update(t.apiKeys).set({ lastUsedAt: at }).where(eq(t.apiKeys.id, id)), logger)

  const byHash = db
    .select({ id: t.apiKeys.id, userId: t.apiKeys.userId, scopes: t.apiKeys.scopes, expiresAt: t.apiKeys.expiresAt, role: t.users.role, isActive: t.users.isActive })
    .from(t.apiKeys)
    .innerJoin(t.users, eq(t.users.id, t.apiKeys.userId))
    .where(eq(t.apiKeys.keyHash, sql.placeholder('hash')))
    .prepare('api_keys_by_hash')

  revocations.onInvalidate((inv) => {
    if (inv.kind === 'api_key') cache.delete(inv.hash)
    else if (inv.kind === 'user') for (const [hash, k] of cache) if (k.userId === inv.id) cache.delete(hash)
  })

  /** `lastUsedAt` includes the uses not yet written */
  const visible = ({ keyHash: _, ...k }: Database['t']['apiKeys']['$inferSelect']): ApiKey => ({ ...k, lastUsedAt: lastUsed.get(k.id) ?? k.lastUsedAt })

  return {
    /** A new key, with the key itself: the only time it is known. */
    async create(userId: string, input: { name: string; scopes?: readonly ApiKeyScope[]; expiresAt?: Date | null }): Promise<ApiKey & { key: string }> {
      const key = `hk_${randomToken(32)}`
      // stored in a fixed order, once each
      const scopes = API_KEY_SCOPES.filter((s) => (input.scopes ?? DEFAULT_API_KEY_SCOPES).includes(s))
      const [row] = await db
        .insert(t.apiKeys)
        .values({ userId, name: input.name, prefix: key.slice(0, 11), keyHash: sha256(key), scopes, expiresAt: input.expiresAt ?? null })
        .returning()
      return { ...visible(row!), key }
    },

    /** Newest first. */
    async list(userId: string): Promise<ApiKey[]> {
      const rows = await db.select().from(t.apiKeys).where(eq(t.apiKeys.userId, userId)).orderBy(desc(t.apiKeys.createdAt))
      return rows.map(visible)
    },

    async remove(userId: string, id: string) {
      const [row] = await db.delete(t.apiKeys).where(and(eq(t.apiKeys.id, id), eq(t.apiKeys.userId, userId))).returning({ hash: t.apiKeys.keyHash })
      if (!row) throw apiKeyNotFound()
      await revocations.publish({ kind: 'api_key', hash: row.hash, id })
    },

    async revokeAllOf(userId: string) {
      const rows = await db.delete(t.apiKeys).where(eq(t.apiKeys.userId, userId)).returning({ hash: t.apiKeys.keyHash, id: t.apiKeys.id })
      await revocations.publish(...rows.map((r) => ({ kind: 'api_key' as const, hash: r.hash, id: r.id })))
    },

    async authenticate(key: string): Promise<Principal> {
      const hash = sha256(key)
      const now = Date.now()
      let entry = cache.get(hash)
      if (!entry || now - entry.cachedAt > CACHE_TTL_MS) {
        const [row] = await byHash.execute({ hash })
        if (!row || !row.isActive) {
          cache.delete(hash)
          throw apiKeyInvalid()
        }
        entry = { id: row.id, userId: row.userId, role: row.role, scopes: row.scopes, expiresAt: row.expiresAt?.getTime() ?? null, cachedAt: now }
        if (cache.size > 10_000) cache.clear()
        cache.set(hash, entry)
      }
      if (entry.expiresAt !== null && entry.expiresAt <= now) throw apiKeyExpired()
      lastUsed.mark(entry.id, now)
      return { userId: entry.userId, role: entry.role, via: 'api_key', sessionId: null, apiKeyId: entry.id, scopes: entry.scopes }
    },

    close: () => lastUsed.close(),
  }
}

export type ApiKeysService = ReturnType<typeof createApiKeysService>
