/** @module The privacy settings on the wire (docs/api.md §5 "Privacy and history retention"). */
import { z } from 'zod'
import type { PrivacySettings } from './service.ts'

export const MAX_RETENTION_DAYS = 3650

export const privacySchema = z
  .object({
    history_retention_days: z
      .number()
      .int()
      .min(1)
      .max(MAX_RETENTION_DAYS)
      .nullable()
      .meta({ description: `null: keep everything; else 1–${MAX_RETENTION_DAYS}: your conversations without activity, your finished tasks and your tool call logs older than this many days are deleted (checked hourly)` }),
    memory_enabled: z.boolean().meta({ description: 'the `memory_enabled` preference: your memories are added to new answers' }),
    usage_visible_to_group_admins: z.boolean().meta({ description: "whether the admins of your groups see your usage (default false)" }),
  })
  .meta({ id: 'Privacy' })

export const privacyPatchBody = privacySchema.partial()

export const toPrivacyDto = (s: PrivacySettings): z.infer<typeof privacySchema> => ({
  history_retention_days: s.historyRetentionDays,
  memory_enabled: s.memoryEnabled,
  usage_visible_to_group_admins: s.usageVisibleToGroupAdmins,
})

export const fromPrivacyPatchBody = (b: z.infer<typeof privacyPatchBody>): Partial<PrivacySettings> => ({
  historyRetentionDays: b.history_retention_days,
  memoryEnabled: b.memory_enabled,
  usageVisibleToGroupAdmins: b.usage_visible_to_group_admins,
})
