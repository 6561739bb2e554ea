/** @module The groups wire (docs/api.md §21): Group, its settings, members and memberships, effective settings; and the row → wire mappings. */
import { z } from 'zod'
import { isoDate, withDefault } from '../../lib/schemas.ts'
import { MAX_SYSTEM_PROMPT, settingsOf, type Group, type GroupMember, type GroupSettings, type Membership } from './service.ts'
import type { UsageStats } from '../usage/service.ts'

const ref = z.string().trim().min(1).max(200)

export const groupSettingsSchema = z
  .object({
    default_model_id: z.string().nullable().describe('catalogue id of a global model'),
    allowed_model_ids: z.array(z.string()).nullable().describe('catalogue ids of the global models members may use; null: no restriction'),
    preset_id: z.string().nullable(),
    system_prompt: z.string().nullable(),
    tools: z.array(z.string()).nullable(),
    rate_limit: z.number().int().nullable().describe('requests per minute, replacing HEARTH_RATE_LIMIT for members'),
  })
  .meta({ id: 'GroupSettings' })

/** Fields sent are set, fields left out kept, `null` clears. Models by catalogue id or name (of global models). */
export const groupSettingsBody = z.object({
  default_model_id: ref.nullable().optional(),
  allowed_model_ids: z.array(ref).min(1).max(200).nullable().optional(),
  preset_id: ref.nullable().optional(),
  system_prompt: z.string().max(MAX_SYSTEM_PROMPT).nullable().optional(),
  tools: z.array(ref).max(200).nullable().optional(),
  rate_limit: z.number().int().min(1).max(100_000).nullable().optional(),
})

export const groupSchema = z
  .object({ id: z.string(), name: z.string(), description: z.string().nullable(), member_count: z.number().int(), settings: groupSettingsSchema, created_at: isoDate, updated_at: isoDate })
  .meta({ id: 'Group' })

const name = z.string().trim().min(1).max(100)
const description = z.string().max(2000).nullable()
export const createGroupBody = z.object({ name, description: description.optional(), settings: groupSettingsBody.optional() })
export const updateGroupBody = z.object({ name: name.optional(), description: description.optional(), settings: groupSettingsBody.optional() })

export const groupRole = z.enum(['member', 'group_admin'])
export const memberBody = z.object({ user_id: z.string().min(1).max(64), role: withDefault(groupRole, 'member') })
export const memberParams = z.object({ id: z.string().min(1).max(64), user_id: z.string().min(1).max(64) })

export const groupMemberSchema = z
  .object({ user_id: z.string(), username: z.string(), display_name: z.string().nullable(), email: z.string(), role: groupRole, joined_at: isoDate })
  .meta({ id: 'GroupMember' })

const usageSchema = z.object({ input_tokens: z.number().int(), output_tokens: z.number().int(), cost: z.number() }).meta({ id: 'MemberUsage' })
export const groupMemberWithUsageSchema = groupMemberSchema
  .extend({ usage: usageSchema.nullable().describe('null: the member keeps their usage from group admins (usage_visible_to_group_admins)') })
  .meta({ id: 'GroupMemberWithUsage' })

export const membershipSchema = z
  .object({ id: z.string(), name: z.string(), description: z.string().nullable(), role: groupRole, joined_at: isoDate })
  .meta({ id: 'GroupMembership', description: 'One of your groups and your role in it' })

const fromOne = <T extends z.ZodType>(value: T, sources: [string, ...string[]]) => z.object({ value, source: z.enum(sources), group_id: z.string().nullable() })
const fromMany = <T extends z.ZodType>(value: T) => z.object({ value, source: z.enum(['group', 'instance']), group_ids: z.array(z.string()) })
export const effectiveSettingsSchema = z
  .object({
    default_model_id: fromOne(z.string().nullable(), ['preference', 'group', 'instance']),
    allowed_model_ids: fromMany(z.array(z.string()).nullable()),
    preset_id: fromOne(z.string().nullable(), ['group', 'instance']),
    system_prompt: fromOne(z.string().nullable(), ['group', 'instance']),
    tools: fromMany(z.array(z.string()).nullable()),
    rate_limit: fromOne(z.object({ limit: z.number().int(), window_seconds: z.number().int() }), ['group', 'instance']),
  })
  .meta({ id: 'EffectiveSettings' })

export const toSettingsDto = (s: GroupSettings): z.infer<typeof groupSettingsSchema> => ({
  default_model_id: s.defaultModelId,
  allowed_model_ids: s.allowedModelIds,
  preset_id: s.presetId,
  system_prompt: s.systemPrompt,
  tools: s.tools,
  rate_limit: s.rateLimit,
})

export const fromSettingsBody = (b: z.infer<typeof groupSettingsBody>): Partial<GroupSettings> => ({
  defaultModelId: b.default_model_id,
  allowedModelIds: b.allowed_model_ids,
  presetId: b.preset_id,
  systemPrompt: b.system_prompt,
  tools: b.tools,
  rateLimit: b.rate_limit,
})

export const toGroupDto = (g: Group): z.infer<typeof groupSchema> => ({
  id: g.id,
  name: g.name,
  description: g.description,
  member_count: g.memberCount,
  settings: toSettingsDto(settingsOf(g)),
  created_at: g.createdAt.toISOString(),
  updated_at: g.updatedAt.toISOString(),
})

export const toMemberDto = (m: GroupMember): z.infer<typeof groupMemberSchema> => ({
  user_id: m.userId,
  username: m.username,
  display_name: m.displayName,
  email: m.email,
  role: m.role,
  joined_at: m.joinedAt.toISOString(),
})

export const toMemberWithUsageDto = (m: GroupMember & { usage: UsageStats | null }): z.infer<typeof groupMemberWithUsageSchema> => ({
  ...toMemberDto(m),
  usage: m.usage && { input_tokens: m.usage.inputTokens, output_tokens: m.usage.outputTokens, cost: m.usage.cost },
})

export const toMembershipDto = (m: Membership): z.infer<typeof membershipSchema> => ({ id: m.group.id, name: m.group.name, description: m.group.description, role: m.role, joined_at: m.joinedAt.toISOString() })
