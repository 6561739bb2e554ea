/**
 * @module Open subscriptions: every event stream a signed-in caller holds open — chat streams now,
 * task streams and WebSocket sockets next — registered with the user, session or API key that
 * opened it and the topics it follows (`conversation:<id>`). A revoked credential (auth's
 * invalidations, which reach every instance) or a deleted topic (this module's `streams` bus
 * channel) ends the matching subscriptions at once with one final event. At most `maxPerUser` are
 * open per user on one instance: the next is refused with 429.
 */
import { defineChannel, type Bus } from '../db/bus.ts'
import { AppError } from '../lib/errors.ts'

/** Who holds a subscription: auth's Principal has this shape. */
export interface SubscriptionOwner {
  userId: string
  sessionId: string | null
  apiKeyId: string | null
}

/**
 * What ends subscriptions from outside, as auth's invalidations have it: a session signed out or
 * revoked, an API key deleted, or a user's cut-off (role change, disabled, deleted) at `after` ms.
 */
export type Revocation = { kind: 'session'; id: string } | { kind: 'api_key'; id: string } | { kind: 'user'; id: string; after: number }

/** The last event a subscription gets when the server ends it (no `id`: it is not part of the run's log). */
export interface FinalEvent {
  event: string
  data: unknown
}

/**
 * `revoked` (docs/api.md §11): the credential that opened the stream no longer works.
 * UNAUTHORIZED: sign in again; TOKEN_EXPIRED: the account changed — refresh the token (an API key
 * needs nothing) and reconnect.
 */
const REVOKED = {
  session: { event: 'revoked', data: { code: 'UNAUTHORIZED', reason: 'session_revoked' } },
  api_key: { event: 'revoked', data: { code: 'UNAUTHORIZED', reason: 'api_key_revoked' } },
  user: { event: 'revoked', data: { code: 'TOKEN_EXPIRED', reason: 'access_changed' } },
} as const satisfies Record<Revocation['kind'], FinalEvent>

/** `deleted`: what the stream follows is gone (a re-attach is 404). */
export const deletedEvent = (reason: string): FinalEvent => ({ event: 'deleted', data: { code: 'NOT_FOUND', reason } })

/** How long a client refused for too many streams (or runs) is asked to wait: until one of its own ends. */
export const BUSY_RETRY_AFTER_S = 5

export const tooManyStreams = (max: number) =>
  new AppError(429, 'RATE_LIMITED', `You have ${max} event streams open, the most allowed at once; close one first`, undefined, { 'retry-after': String(BUSY_RETRY_AFTER_S) })

/** One open stream's place in the registry. */
export interface Subscription {
  /** follow `topic` too (a stream that creates its conversation learns its id late) */
  watch(topic: string): void
  /** `end` is called once if the server ends this subscription — at once if it already has */
  onEnd(end: (final: FinalEvent) => void): void
  /** the stream is over, whichever way: frees its place. Safe to call twice. */
  release(): void
}

interface Entry {
  owner: SubscriptionOwner
  openedAt: number
  topics: Set<string>
  final?: FinalEvent
  listener?: (final: FinalEvent) => void
  released: boolean
}

const streamsChannel = defineChannel<{ topic: string; final: FinalEvent }>('streams')

type Index = Map<string, Set<Entry>>
const add = (index: Index, key: string, e: Entry) => {
  let set = index.get(key)
  if (!set) index.set(key, (set = new Set()))
  set.add(e)
}
const remove = (index: Index, key: string, e: Entry) => {
  const set = index.get(key)
  if (set?.delete(e) && set.size === 0) index.delete(key)
}

function end(e: Entry, final: FinalEvent) {
  if (e.final || e.released) return
  e.final = final
  e.listener?.(final)
}

export function createSubscriptions(deps: { bus: Bus; maxPerUser: number }) {
  const { bus, maxPerUser } = deps
  const byUser: Index = new Map()
  const bySession: Index = new Map()
  const byApiKey: Index = new Map()
  const byTopic: Index = new Map()

  const endAll = (set: Set<Entry> | undefined, final: FinalEvent, which: (e: Entry) => boolean = () => true) => {
    if (set) for (const e of [...set]) if (which(e)) end(e, final)
  }

  const unsubscribe = bus.subscribe(streamsChannel, ({ topic, final }) => endAll(byTopic.get(topic), final))

  return {
    /** Register a stream of `owner`; 429 when they hold `maxPerUser` here already. */
    open(owner: SubscriptionOwner): Subscription {
      if ((byUser.get(owner.userId)?.size ?? 0) >= maxPerUser) throw tooManyStreams(maxPerUser)
      const e: Entry = { owner: { userId: owner.userId, sessionId: owner.sessionId, apiKeyId: owner.apiKeyId }, openedAt: Date.now(), topics: new Set(), released: false }
      add(byUser, owner.userId, e)
      if (owner.sessionId) add(bySession, owner.sessionId, e)
      if (owner.apiKeyId) add(byApiKey, owner.apiKeyId, e)
      return {
        watch(topic) {
          if (e.released || e.topics.has(topic)) return
          e.topics.add(topic)
          add(byTopic, topic, e)
        },
        onEnd(listener) {
          e.listener = listener
          if (e.final) listener(e.final)
        },
        release() {
          if (e.released) return
          e.released = true
          remove(byUser, e.owner.userId, e)
          if (e.owner.sessionId) remove(bySession, e.owner.sessionId, e)
          if (e.owner.apiKeyId) remove(byApiKey, e.owner.apiKeyId, e)
          for (const topic of e.topics) remove(byTopic, topic, e)
        },
      }
    },

    /**
     * A credential stopped working (on any instance): end what it opened. A user's cut-off ends
     * every subscription of that user opened until then, API keys' included.
     */
    revoke(r: Revocation) {
      if (r.kind === 'session') endAll(bySession.get(r.id), REVOKED.session)
      else if (r.kind === 'api_key') endAll(byApiKey.get(r.id), REVOKED.api_key)
      else endAll(byUser.get(r.id), REVOKED.user, (e) => e.openedAt <= r.after)
    },

    /** End every subscription following `topic`, here and on every other instance. */
    endTopic: (topic: string, final: FinalEvent) => bus.publish(streamsChannel, { topic, final }),

    /** Subscriptions `userId` holds open on this instance. */
    countOf: (userId: string) => byUser.get(userId)?.size ?? 0,

    close() {
      unsubscribe()
    },
  }
}

export type Subscriptions = ReturnType<typeof createSubscriptions>
