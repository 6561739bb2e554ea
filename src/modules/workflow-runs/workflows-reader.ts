/**
 * @module Interim: the part of WorkflowsApi that runs read (get, serviceOf, touch), straight from the
 * tables, until the workflows module's service is merged; then services.ts passes that one instead.
 */
import { and, eq } from 'drizzle-orm'
import type { Database } from '../../db/index.ts'
import { notFound } from '../../lib/errors.ts'
import type { WorkflowsApi } from '../workflows/types.ts'

export function workflowsReader(database: Database): Pick<WorkflowsApi, 'get' | 'serviceOf' | 'touch'> {
  const { db, t } = database
  return {
    async get(userId, id) {
      const [row] = await db.select().from(t.workflows).where(and(eq(t.workflows.id, id), eq(t.workflows.userId, userId)))
      if (!row) throw notFound('Workflow')
      return row
    },
    async serviceOf(workflow) {
      if (!workflow.serviceId) return null
      const [row] = await db.select().from(t.services).where(eq(t.services.id, workflow.serviceId))
      return row ?? null
    },
    async touch(id) {
      await db.update(t.workflows).set({ lastUsedAt: new Date() }).where(eq(t.workflows.id, id))
    },
  }
}
