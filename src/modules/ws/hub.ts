/**
 * @module The sockets of `/ws/chat` on this instance, by user, and the fan-out of the bus's frames
 * to them. Each instance subscribes once to each frame channel (sessions' `session_frames`,
 * workflows' `workflow_locks`); a frame goes to every socket of its `user_id` here that hears it.
 * On Postgres the bus brings other instances' frames too, so a socket hears them wherever it is.
 */
import type { ServerWebSocket } from 'bun'
import type { Bus } from '../../db/bus.ts'
import type { Logger } from '../../lib/logger.ts'
import type { Subscription } from '../../runs/subscriptions.ts'
import type { Principal } from '../auth/service.ts'
import { sessionFramesChannel, type SessionFrame } from '../sessions/types.ts'
import { workflowLockChannel, type WorkflowLockEvent } from '../workflows/types.ts'
import { FRAMES_PER_SECOND, GOING_AWAY, MAX_PENDING_FRAMES } from './frames.ts'

/**
 * One open socket: who it is for, the registry entry that ends it on revocation, what it has
 * narrowed itself to, and its frame budget. A class, so the per-socket cost is its fields.
 */
export class SocketConnection {
  /** undefined: every session of the user; else only these (SUBSCRIBE and SEND_MESSAGE add to it) */
  sessions: Set<string> | undefined
  /** undefined: every workflow of the user; else only these */
  workflows: Set<string> | undefined
  /** frames waiting for the ones before them to finish (they are handled one at a time, in order) */
  pending = 0
  tail: Promise<void> = Promise.resolve()
  private tokens = FRAMES_PER_SECOND
  private refilledAt = performance.now()

  constructor(
    readonly socket: ServerWebSocket<unknown>,
    readonly principal: Principal,
    readonly subscription: Subscription,
  ) {}

  get userId() {
    return this.principal.userId
  }

  hearsSession(sessionId: string) {
    return this.sessions === undefined || this.sessions.has(sessionId)
  }

  hearsWorkflow(workflowId: string) {
    return this.workflows === undefined || this.workflows.has(workflowId)
  }

  /** Token bucket: FRAMES_PER_SECOND a second, bursts up to as many. false: over the limit. */
  takeFrame(): boolean {
    const now = performance.now()
    this.tokens = Math.min(FRAMES_PER_SECOND, this.tokens + ((now - this.refilledAt) * FRAMES_PER_SECOND) / 1000)
    this.refilledAt = now
    if (this.tokens < 1) return false
    this.tokens -= 1
    return true
  }

  /** Room for one more frame behind the ones being handled. */
  get saturated() {
    return this.pending >= MAX_PENDING_FRAMES
  }

  send(text: string) {
    this.socket.send(text)
  }
}

/** A bus frame as the wire has it: without `user_id`. */
const wire = (frame: SessionFrame | WorkflowLockEvent) => {
  const { user_id: _, ...rest } = frame
  return JSON.stringify(rest)
}

export function createSocketHub(deps: { bus: Bus; logger: Logger }) {
  const { bus, logger } = deps
  const byUser = new Map<string, Set<SocketConnection>>()
  let closed = false

  /** Serialised once, sent to each of the user's sockets here that hears it. */
  const fanOut = (userId: string, hears: (c: SocketConnection) => boolean, frame: SessionFrame | WorkflowLockEvent) => {
    const sockets = byUser.get(userId)
    if (!sockets) return
    let text: string | undefined
    for (const c of sockets) {
      if (!hears(c)) continue
      text ??= wire(frame)
      try {
        c.send(text)
      } catch (error) {
        logger.warn('ws: a frame could not be sent', { error, user_id: userId })
      }
    }
  }

  const unsubscribe = [
    bus.subscribe(sessionFramesChannel, (f) => fanOut(f.user_id, (c) => c.hearsSession(f.session_id), f)),
    bus.subscribe(workflowLockChannel, (f) => fanOut(f.user_id, (c) => c.hearsWorkflow(f.workflow_id), f)),
  ]

  return {
    add(c: SocketConnection) {
      let set = byUser.get(c.userId)
      if (!set) byUser.set(c.userId, (set = new Set()))
      set.add(c)
    },

    remove(c: SocketConnection) {
      const set = byUser.get(c.userId)
      if (set?.delete(c) && set.size === 0) byUser.delete(c.userId)
    },

    /** Open sockets on this instance (of one user, or all). */
    count(userId?: string) {
      if (userId !== undefined) return byUser.get(userId)?.size ?? 0
      let n = 0
      for (const set of byUser.values()) n += set.size
      return n
    },

    get closed() {
      return closed
    },

    /** Close every socket here with 1001 (the server is going away; clients reconnect elsewhere) and stop listening. */
    close() {
      if (closed) return
      closed = true
      for (const u of unsubscribe) u()
      for (const set of byUser.values()) for (const c of set) c.socket.close(GOING_AWAY, 'Server shutting down')
      byUser.clear()
    },
  }
}

export type SocketHub = ReturnType<typeof createSocketHub>
