/**
 * @module What the workflows module offers workflow runs (the `workflow` task kind) and sessions
 * (the editing agent, the WebSocket): reading a user's workflow and its service, writing a new
 * version, and the lock an agent holds while it edits. Lock changes are published on one bus
 * channel so that sockets on every instance hear them.
 */
import { defineChannel } from '../../db/bus.ts'
import type { Database } from '../../db/index.ts'

export type WorkflowRow = Database['t']['workflows']['$inferSelect']
export type ServiceRow = Database['t']['services']['$inferSelect']

/** `WORKFLOW_LOCKED` / `WORKFLOW_UNLOCKED` for the workflow's owner's sockets, on every instance. */
export type WorkflowLockEvent =
  | { type: 'WORKFLOW_LOCKED'; user_id: string; workflow_id: string; reason: string }
  | { type: 'WORKFLOW_UNLOCKED'; user_id: string; workflow_id: string }
export const workflowLockChannel = defineChannel<WorkflowLockEvent>('workflow_locks')

/** How long a lock holds without renewal: a dead instance's lock is free after this. */
export const WORKFLOW_LOCK_TTL_MS = 60_000

export interface WorkflowsApi {
  /** the user's workflow, else 404 (another user's too) */
  get(userId: string, id: string): Promise<WorkflowRow>
  /** its service, or null when it has none (deleted, never set) */
  serviceOf(workflow: WorkflowRow): Promise<ServiceRow | null>
  /**
   * Take the lock for `holder` (e.g. `session:<id>`) until now + ttl; taking it again as the same holder
   * renews it. Another live holder's lock: `409 CONFLICT`. Publishes WORKFLOW_LOCKED when it was free.
   */
  lock(userId: string, id: string, holder: string, reason: string, ttlMs?: number): Promise<void>
  /** Free it if `holder` has it (no-op otherwise); publishes WORKFLOW_UNLOCKED. */
  unlock(userId: string, id: string, holder: string): Promise<void>
  /**
   * Change it: a change of `workflowData` adds a version (`note` is that version's note). Refused with
   * `409 CONFLICT` while locked by anyone but `holder` (a user's own PUT passes no holder).
   */
  update(
    userId: string,
    id: string,
    patch: { name?: string; description?: string | null; serviceId?: string | null; workflowData?: Record<string, unknown>; note?: string | null },
    opts?: { holder?: string },
  ): Promise<WorkflowRow>
  /** set `last_used_at` (a run or a session message used it) */
  touch(id: string): Promise<void>
}
