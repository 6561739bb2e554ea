/**
 * @module What makes a still-unexpired access token stop working at once: revoked sessions and
 * per-user cut-offs (role change, disable). Kept in memory for one access-token lifetime, loaded
 * from the database at start, spread to every instance on the bus's `auth` channel, and re-loaded
 * when the bus may have missed messages, so a lost notification is recovered.
 */
import { and, gt, isNotNull } from 'drizzle-orm'
import { defineChannel, type Bus } from '../../db/bus.ts'
import type { Database } from '../../db/index.ts'
import type { Logger } from '../../lib/logger.ts'
import type { AccessClaims } from './tokens.ts'

export type Invalidation =
  | { kind: 'session'; id: string }
  | { kind: 'user'; id: string; after: number }
  /** `hash` drops cached lookups of the key; `id` ends the streams it opened */
  | { kind: 'api_key'; hash: string; id: string }

const authChannel = defineChannel<Invalidation>('auth')

export function createRevocationsService(deps: { database: Database; bus: Bus; logger: Logger; ttlMs: number }) {
  const { database, bus, logger, ttlMs } = deps
  /** session id → when the entry can be forgotten (every token it had has expired) */
  const sessions = new Map<string, number>()
  /** user id → tokens issued before this ms are refused */
  const userCutoffs = new Map<string, number>()
  const listeners: ((inv: Invalidation) => void)[] = []
  let unsubscribe: (() => void) | undefined
  let pruneTimer: Timer | undefined

  const apply = (inv: Invalidation) => {
    const forgetAt = Date.now() + ttlMs
    if (inv.kind === 'session') sessions.set(inv.id, forgetAt)
    else if (inv.kind === 'user') userCutoffs.set(inv.id, Math.max(userCutoffs.get(inv.id) ?? 0, inv.after))
    for (const l of listeners) l(inv)
  }

  async function loadRecent() {
    const { db, t } = database
    const since = new Date(Date.now() - ttlMs)
    const revoked = await db.select({ id: t.sessions.id }).from(t.sessions).where(and(isNotNull(t.sessions.revokedAt), gt(t.sessions.revokedAt, since)))
    for (const r of revoked) apply({ kind: 'session', id: r.id })
    const cut = await db.select({ id: t.users.id, after: t.users.tokensValidAfter }).from(t.users).where(gt(t.users.tokensValidAfter, since))
    for (const u of cut) apply({ kind: 'user', id: u.id, after: u.after!.getTime() })
  }

  return {
    /**
     * Why a token with these claims must be refused although it has not expired: its session was
     * revoked, or it was issued before its user's cut-off (then a refresh gives a current token).
     */
    check(claims: AccessClaims): 'ok' | 'session_revoked' | 'cut_off' {
      if (sessions.size && sessions.has(claims.sid)) return 'session_revoked'
      if (userCutoffs.size) {
        const cutoff = userCutoffs.get(claims.sub)
        if (cutoff !== undefined && claims.ims < cutoff) return 'cut_off'
      }
      return 'ok'
    },

    /** Apply here and on every other instance. */
    async publish(...invalidations: Invalidation[]) {
      await Promise.all(invalidations.map((inv) => bus.publish(authChannel, inv)))
    },

    onInvalidate(listener: (inv: Invalidation) => void) {
      listeners.push(listener)
    },

    async start() {
      await loadRecent()
      pruneTimer = setInterval(() => {
        const now = Date.now()
        for (const [id, forgetAt] of sessions) if (forgetAt <= now) sessions.delete(id)
        for (const [id, after] of userCutoffs) if (after + ttlMs <= now) userCutoffs.delete(id)
      }, 60_000)
      pruneTimer.unref?.()
      unsubscribe = bus.subscribe(authChannel, apply, { onResync: () => void loadRecent().catch((error) => logger.error('could not reload revocations', { error })) })
    },

    close() {
      clearInterval(pruneTimer)
      unsubscribe?.()
    },
  }
}

export type RevocationsService = ReturnType<typeof createRevocationsService>
