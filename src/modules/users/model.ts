/** @module The user object, preferences, stats and credits on the wire (docs/api.md §4, §5), and the mapping from users' rows. */
import { z } from 'zod'
import { isoDate } from '../../lib/schemas.ts'
import type { UsageStats } from '../usage/service.ts'
import type { ActivityCounts } from './activity.ts'
import type { UserRow } from './service.ts'

export const userSchema = z
  .object({
    id: z.string(),
    username: z.string(),
    email: z.string(),
    display_name: z.string().nullable(),
    avatar_url: z.string().nullable(),
    role: z.enum(['user', 'admin']),
    is_active: z.boolean(),
    email_verified: z.boolean(),
    has_password: z.boolean().meta({ description: 'false: an account made by single sign-on that has not set a password (it sets its first one without `old_password`, and deletes itself after a fresh single sign-on)' }),
    created_at: isoDate,
  })
  .meta({ id: 'User' })

/** Stored as this JSON document (snake_case is its data, not a mapping), defaults filled in by `preferencesOf`. */
export const preferencesSchema = z
  .object({
    language: z.enum(['zh', 'en']),
    theme: z.enum(['light', 'dark', 'system']),
    default_model_id: z.string().max(64).nullable().meta({ description: 'a model you can use, by id or name (422 otherwise when set); null: the catalogue default' }),
    default_connection_id: z.string().max(64).nullable(),
    view_mode: z.enum(['user', 'developer']),
    context_rounds: z.number().int().min(0).max(50),
    memory_enabled: z.boolean(),
  })
  .meta({ id: 'Preferences' })

export const profileSchema = userSchema.extend({ preferences: preferencesSchema })

const urlOrNull = z.url({ protocol: /^https?$/ }).max(2048).nullable()
export const profilePatchBody = z.object({ display_name: z.string().trim().min(1).max(100).nullable().optional(), avatar_url: urlOrNull.optional() })

export const statsSchema = z.object({ conversations: z.number().int(), messages: z.number().int(), tasks: z.number().int(), storage_bytes: z.number().int().meta({ description: 'what your files take in storage' }), input_tokens: z.number().int(), output_tokens: z.number().int(), cost: z.number() })
export const creditsSchema = z.object({ balance: z.number(), used: z.number(), enforced: z.boolean() })

/** The user object of docs/api.md §4. */
export const toUserDto = (u: UserRow) => ({
  id: u.id,
  username: u.username,
  email: u.email,
  display_name: u.displayName,
  avatar_url: u.avatarUrl,
  role: u.role,
  is_active: u.isActive,
  email_verified: u.emailVerified,
  has_password: u.hasPassword,
  created_at: u.createdAt.toISOString(),
})

export const fromProfilePatchBody = (b: z.infer<typeof profilePatchBody>) => ({ displayName: b.display_name, avatarUrl: b.avatar_url })

export const toStatsDto = (counts: ActivityCounts, usage: UsageStats) => ({ ...counts, input_tokens: usage.inputTokens, output_tokens: usage.outputTokens, cost: usage.cost })
