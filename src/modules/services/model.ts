/** @module The wire of workflow services (docs/api.md §20 "Services"): the Service object, the bodies, the test answer. */
import { z } from 'zod'
import { isoDate } from '../../lib/schemas.ts'
import type { Principal } from '../auth/service.ts'
import type { ServiceTestResult, ServiceView } from './service.ts'

const kind = z.enum(['comfyui'])

export const serviceSchema = z
  .object({
    id: z.string(),
    name: z.string(),
    kind,
    url: z.string().nullable().meta({ description: "the engine's base URL; null for non-admins (it tells where the server reaches inside its network)" }),
    description: z.string().nullable(),
    status: z.enum(['online', 'offline', 'unknown']),
    response_time_ms: z.number().int().nullable().meta({ description: 'of the last check that reached the engine; null while offline or never checked' }),
    version: z.string().nullable().meta({ description: "the engine's version (ComfyUI's `system.comfyui_version`) as last seen" }),
    workflow_count: z.number().int(),
    session_count: z.number().int(),
    last_check_time: isoDate.nullable(),
    created_at: isoDate,
  })
  .meta({ id: 'Service' })

export const serviceBody = z.object({
  name: z.string().trim().min(1).max(100),
  kind: kind.optional(),
  url: z.string().min(1).max(2048).meta({ description: 'http or https, without user name, password, query or fragment; a path prefix is kept' }),
  description: z.string().trim().max(2000).nullable().optional(),
})

/** PUT: what is sent changes, what is left out stays */
export const servicePatch = serviceBody.partial()

export const serviceDevice = z.object({ name: z.string().nullable(), type: z.string().nullable(), index: z.number().int().nullable(), vram_total: z.number().nullable(), vram_free: z.number().nullable() })

export const serviceTestSchema = z
  .object({
    status: z.enum(['online', 'offline']),
    response_time_ms: z.number().int().meta({ description: 'how long the check took, until the answer or the failure' }),
    version: z.string().nullable().optional(),
    devices: z.array(serviceDevice).optional().meta({ description: "the engine's devices (GPUs, CPU) from /system_stats, when online" }),
    error: z.string().optional().meta({ description: 'why it is offline' }),
  })
  .meta({ id: 'ServiceTest' })

export const toServiceDto = (s: ServiceView, viewer: Pick<Principal, 'role'>): z.infer<typeof serviceSchema> => ({
  id: s.id,
  name: s.name,
  kind: s.kind,
  url: viewer.role === 'admin' ? s.url : null,
  description: s.description,
  status: s.status,
  response_time_ms: s.responseTimeMs,
  version: s.version,
  workflow_count: s.workflowCount,
  session_count: s.sessionCount,
  last_check_time: s.lastCheckTime?.toISOString() ?? null,
  created_at: s.createdAt.toISOString(),
})

export const toServiceTestDto = (r: ServiceTestResult): z.infer<typeof serviceTestSchema> =>
  r.status === 'online' ? { status: r.status, response_time_ms: r.responseTimeMs, version: r.version ?? null, devices: r.devices ?? [] } : { status: r.status, response_time_ms: r.responseTimeMs, error: r.error }
