/** @module The admin routes' wire schemas (docs/api.md §4 invites, §5 users and status, §9 usage) and the mapping to them. */
import { z } from 'zod'
import { expiryTime, isoDate, listQuery } from '../../lib/schemas.ts'
import type { UsageGroup } from '../usage/service.ts'
import { userSchema, toUserDto } from '../users/model.ts'
import type { UserRow } from '../users/service.ts'
import type { InviteRow } from './invites.ts'

const role = z.enum(['user', 'admin'])
const dateOrDateTime = z.iso.datetime({ offset: true }).or(z.iso.date())

export const adminUserSchema = userSchema.extend({
  credits: z.object({ balance: z.number(), used: z.number() }),
  storage: z.object({ used_bytes: z.number().int(), quota_bytes: z.number().int().nullable().meta({ description: "the user's own quota; null: the instance default" }) }),
})
export const userListQuery = listQuery.extend({ q: z.string().max(100).optional(), role: role.optional(), is_active: z.enum(['true', 'false']).optional() })
export const userPatchBody = z.object({
  role: role.optional(),
  is_active: z.boolean().optional(),
  credits_delta: z.number().finite().min(-1e12).max(1e12).optional(),
  storage_quota_bytes: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).nullable().optional().meta({ description: "the user's storage quota in bytes; null: the instance's HEARTH_STORAGE_QUOTA_BYTES" }),
})

export const inviteSchema = z
  .object({ id: z.string(), prefix: z.string(), note: z.string().nullable(), created_at: isoDate, expires_at: isoDate.nullable(), used_at: isoDate.nullable(), used_by: z.string().nullable() })
  .meta({ id: 'Invite' })
export const inviteCreated = inviteSchema.extend({ code: z.string() })
export const inviteCreateBody = z.object({ note: z.string().max(200).nullable().optional(), expires_at: expiryTime.nullable().optional() })

export const usageQuery = listQuery.extend({ from: dateOrDateTime.optional(), to: dateOrDateTime.optional(), user_id: z.string().max(64).optional(), model: z.string().max(200).optional() })
export const usageGroupSchema = z.object({
  day: z.string(),
  user_id: z.string().nullable(),
  username: z.string().nullable(),
  model: z.string(),
  calls: z.number().int(),
  input_tokens: z.number().int(),
  output_tokens: z.number().int(),
  cost: z.number(),
  errors: z.number().int(),
})

export const statusSchema = z.object({
  version: z.string(),
  uptime_s: z.number().int(),
  database: z.enum(['sqlite', 'postgres']),
  counts: z.object({ users: z.number().int(), conversations: z.number().int(), messages: z.number().int(), tasks: z.number().int(), storage_bytes: z.number().int() }),
  memory: z.object({ rss_bytes: z.number().int() }),
})

export const toAdminUserDto = (u: UserRow) => ({ ...toUserDto(u), credits: { balance: u.creditBalance, used: u.creditUsed }, storage: { used_bytes: Number(u.storageUsed), quota_bytes: u.storageQuota === null ? null : Number(u.storageQuota) } })

export const fromUserListQuery = (q: z.infer<typeof userListQuery>) => ({ q: q.q, role: q.role, isActive: q.is_active === undefined ? undefined : q.is_active === 'true' })
export const fromUserPatchBody = (b: z.infer<typeof userPatchBody>) => ({ role: b.role, isActive: b.is_active, creditsDelta: b.credits_delta, storageQuota: b.storage_quota_bytes })

export const toInviteDto = (i: InviteRow) => ({
  id: i.id,
  prefix: i.prefix,
  note: i.note,
  created_at: i.createdAt.toISOString(),
  expires_at: i.expiresAt?.toISOString() ?? null,
  used_at: i.usedAt?.toISOString() ?? null,
  used_by: i.usedBy,
})
export const toInviteCreatedDto = (i: InviteRow & { code: string }) => ({ ...toInviteDto(i), code: i.code })
export const fromInviteCreateBody = (b: z.infer<typeof inviteCreateBody>) => ({ note: b.note, expiresAt: b.expires_at ? new Date(b.expires_at) : null })

export const fromUsageQuery = (q: z.infer<typeof usageQuery>) => ({ from: q.from ? new Date(q.from) : undefined, to: q.to ? new Date(q.to) : undefined, userId: q.user_id, model: q.model })
export const toUsageGroupDto = (g: UsageGroup) => ({
  day: g.day,
  user_id: g.userId,
  username: g.username,
  model: g.model,
  calls: g.calls,
  input_tokens: g.inputTokens,
  output_tokens: g.outputTokens,
  cost: g.cost,
  errors: g.errors,
})
