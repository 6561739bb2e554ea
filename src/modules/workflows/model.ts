/** @module The wire of workflows and their versions (docs/api.md §20 "Workflows and versions"). */
import { z } from 'zod'
import { isoDate, listQuery, queryInteger } from '../../lib/schemas.ts'
import type { VersionRow, WorkflowView } from './service.ts'
import { SORT_FIELDS } from './service.ts'

const workflowData = z.record(z.string(), z.unknown()).meta({ description: "the engine's workflow JSON, an object: ComfyUI's API format (what runs) or its UI format (stored as given)" })

export const workflowSchema = z
  .object({
    id: z.string(),
    name: z.string(),
    description: z.string().nullable(),
    service_id: z.string().nullable(),
    service_name: z.string().nullable(),
    workflow_data: workflowData,
    is_favorite: z.boolean(),
    session_count: z.number().int(),
    version_count: z.number().int(),
    current_version: z.number().int(),
    last_used_at: isoDate.nullable(),
    locked: z.object({ reason: z.string().nullable(), since: isoDate }).nullable().meta({ description: 'while an agent edits it (until the lock expires); other writes get `409`' }),
    created_at: isoDate,
    updated_at: isoDate,
  })
  .meta({ id: 'Workflow' })

const name = z.string().trim().min(1).max(200)
const description = z.string().trim().max(2000).nullable()
const note = z.string().trim().max(500).nullable().meta({ description: 'the note of the version this makes' })

export const workflowBody = z.object({
  name,
  description: description.optional(),
  service_id: z.string().min(1).max(64).nullable().optional(),
  workflow_data: workflowData,
  note: note.optional(),
})

/** PUT: what is sent changes, what is left out stays; a change of `workflow_data` adds a version with `note` */
export const workflowPatch = workflowBody.partial()

export const workflowListQuery = listQuery.extend({
  service_id: z.string().min(1).max(64).optional(),
  favorite: z.enum(['true', 'false']).optional(),
  q: z.string().max(200).optional(),
  sort_by: z.enum(SORT_FIELDS).optional().meta({ description: 'default `updated_at`; `last_used_at` puts never-used workflows last' }),
  sort_order: z.enum(['asc', 'desc']).optional().meta({ description: 'default `desc`' }),
})

export const favoriteBody = z.object({ favorite: z.boolean() })
export const favoriteSchema = z.object({ is_favorite: z.boolean() })

export const versionParams = z.object({ id: z.string().min(1).max(64), version: queryInteger(1, 2_147_483_647) })

export const versionSummarySchema = z.object({ version: z.number().int(), created_at: isoDate, note: z.string().nullable() }).meta({ id: 'WorkflowVersionSummary' })
export const versionSchema = z.object({ version: z.number().int(), workflow_data: workflowData, created_at: isoDate, note: z.string().nullable() }).meta({ id: 'WorkflowVersion' })

export const toWorkflowDto = (w: WorkflowView, now = Date.now()): z.infer<typeof workflowSchema> => ({
  id: w.id,
  name: w.name,
  description: w.description,
  service_id: w.serviceId,
  service_name: w.serviceName,
  workflow_data: w.workflowData,
  is_favorite: w.isFavorite,
  session_count: w.sessionCount,
  version_count: w.versionCount,
  current_version: w.currentVersion,
  last_used_at: w.lastUsedAt?.toISOString() ?? null,
  locked: w.lockedBy !== null && w.lockedUntil !== null && w.lockedUntil.getTime() > now ? { reason: w.lockedReason, since: (w.lockedSince ?? w.lockedUntil).toISOString() } : null,
  created_at: w.createdAt.toISOString(),
  updated_at: w.updatedAt.toISOString(),
})

export const toVersionSummaryDto = (v: Pick<VersionRow, 'version' | 'createdAt' | 'note'>): z.infer<typeof versionSummarySchema> => ({ version: v.version, created_at: v.createdAt.toISOString(), note: v.note })
export const toVersionDto = (v: VersionRow): z.infer<typeof versionSchema> => ({ version: v.version, workflow_data: v.workflowData, created_at: v.createdAt.toISOString(), note: v.note })
