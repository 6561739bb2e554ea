/**
 * @module INTERIM: the part of the workflows contract (src/modules/workflows/types.ts) that
 * sessions use, over the workflows tables, until the workflows module lands (it replaces this
 * file). Same rules: a user's own workflows only; the lock in the row (holder, reason, since,
 * until; a lock past `until` is free); a write while another holder's live lock is `409`; a change
 * of the JSON adds a version.
 */
import { and, eq } from 'drizzle-orm'
import type { Bus } from '../../db/bus.ts'
import type { Database } from '../../db/index.ts'
import { withLock } from '../../db/lock.ts'
import { conflict, notFound } from '../../lib/errors.ts'
import { WORKFLOW_LOCK_TTL_MS, workflowLockChannel, type WorkflowRow, type WorkflowsApi } from '../workflows/types.ts'

export function createInterimWorkflows(deps: { database: Database; bus: Bus }): WorkflowsApi {
  const { database, bus } = deps
  const { db, t } = database

  async function get(userId: string, id: string): Promise<WorkflowRow> {
    const [row] = await db.select().from(t.workflows).where(and(eq(t.workflows.id, id), eq(t.workflows.userId, userId)))
    if (!row) throw notFound('Workflow')
    return row
  }

  const lockedByOther = (row: WorkflowRow, holder: string | undefined) => !!row.lockedBy && row.lockedBy !== holder && !!row.lockedUntil && row.lockedUntil.getTime() > Date.now()
  const locked = () => conflict('The workflow is being edited by an agent; try again when it is unlocked')

  return {
    get,

    async serviceOf(workflow) {
      if (!workflow.serviceId) return null
      const [row] = await db.select().from(t.services).where(eq(t.services.id, workflow.serviceId))
      return row ?? null
    },

    async lock(userId, id, holder, reason, ttlMs = WORKFLOW_LOCK_TTL_MS) {
      const wasFree = await withLock(database, `workflow:${id}`, async (q) => {
        const [row] = await q.select().from(t.workflows).where(and(eq(t.workflows.id, id), eq(t.workflows.userId, userId)))
        if (!row) throw notFound('Workflow')
        if (lockedByOther(row, holder)) throw locked()
        const now = new Date()
        const free = row.lockedBy !== holder || !row.lockedUntil || row.lockedUntil.getTime() <= now.getTime()
        await q
          .update(t.workflows)
          .set({ lockedBy: holder, lockedReason: reason, lockedSince: free ? now : row.lockedSince, lockedUntil: new Date(now.getTime() + ttlMs) })
          .where(eq(t.workflows.id, id))
        return free
      })
      if (wasFree) await bus.publish(workflowLockChannel, { type: 'WORKFLOW_LOCKED', user_id: userId, workflow_id: id, reason })
    },

    async unlock(userId, id, holder) {
      const rows = await db
        .update(t.workflows)
        .set({ lockedBy: null, lockedReason: null, lockedSince: null, lockedUntil: null })
        .where(and(eq(t.workflows.id, id), eq(t.workflows.userId, userId), eq(t.workflows.lockedBy, holder)))
        .returning({ id: t.workflows.id })
      if (rows.length) await bus.publish(workflowLockChannel, { type: 'WORKFLOW_UNLOCKED', user_id: userId, workflow_id: id })
    },

    async update(userId, id, patch, opts = {}) {
      return withLock(database, `workflow:${id}`, async (q) => {
        const [row] = await q.select().from(t.workflows).where(and(eq(t.workflows.id, id), eq(t.workflows.userId, userId)))
        if (!row) throw notFound('Workflow')
        if (lockedByOther(row, opts.holder)) throw locked()
        const now = new Date()
        const changed = patch.workflowData !== undefined && JSON.stringify(patch.workflowData) !== JSON.stringify(row.workflowData)
        const version = changed ? row.currentVersion + 1 : row.currentVersion
        if (changed) await q.insert(t.workflowVersions).values({ workflowId: id, version, workflowData: patch.workflowData!, note: patch.note ?? null })
        const [updated] = await q
          .update(t.workflows)
          .set({
            name: patch.name,
            description: patch.description,
            serviceId: patch.serviceId,
            ...(changed ? { workflowData: patch.workflowData, currentVersion: version } : {}),
            updatedAt: now,
          })
          .where(eq(t.workflows.id, id))
          .returning()
        return updated!
      })
    },

    async touch(id) {
      await db.update(t.workflows).set({ lastUsedAt: new Date() }).where(eq(t.workflows.id, id))
    },
  }
}
