/** @module The account wire: the export document (built from each module's own wire schemas) and the deletion body. */
import { z } from 'zod'
import { isoDate } from '../../lib/schemas.ts'
import { agentSchema, executionSchema } from '../agents/model.ts'
import { apiKeySchema } from '../auth/model.ts'
import { conversationSchema, messageSchema } from '../chat/model.ts'
import { configSchema } from '../configs/model.ts'
import { connectionSchema } from '../connections/model.ts'
import { fileSchema } from '../files/model.ts'
import { mcpServerSchema } from '../mcp/model.ts'
import { memorySchema } from '../memories/model.ts'
import { planSchema } from '../plans/model.ts'
import { presetSchema } from '../presets/model.ts'
import { modelSchema, providerSchema } from '../providers/model.ts'
import { sessionMessageListItem, sessionSchema } from '../sessions/model.ts'
import { stepSchema, taskSchema } from '../tasks/model.ts'
import { logSchema } from '../tools/model.ts'
import { preferencesSchema, userSchema } from '../users/model.ts'
import { versionSchema, workflowSchema } from '../workflows/model.ts'

export const EXPORT_FORMAT = 'hearth-export/1'

/**
 * A copy of a module's wire schema without its component id: the document's components come from
 * the routes' own answers (in their JSON Schema style), and the same id converted here would differ.
 */
const inline = <T extends z.ZodObject>(schema: T) => schema.extend({}) as T

const share = (parent: string) => z.object({ id: z.string(), [parent]: z.string(), created_at: isoDate })

/** The whole export document, in the order it is written. Every array holds all of them, oldest id first. */
export const accountExportSchema = z
  .object({
    exported_at: isoDate,
    format: z.literal(EXPORT_FORMAT),
    user: userSchema,
    preferences: inline(preferencesSchema),
    privacy: z.object({ history_retention_days: z.number().int().nullable(), memory_enabled: z.boolean(), usage_visible_to_group_admins: z.boolean() }),
    credits: z.object({ balance: z.number(), used: z.number() }),
    usage: z.object({ input_tokens: z.number().int(), output_tokens: z.number().int(), cost: z.number() }).meta({ description: 'the totals of your model calls' }),
    sessions: z.array(
      z.object({ id: z.string(), method: z.enum(['password', 'oidc', 'login_link']), user_agent: z.string().nullable(), ip: z.string().nullable(), created_at: isoDate, last_used_at: isoDate, expires_at: isoDate, revoked_at: isoDate.nullable() }),
    ),
    api_keys: z.array(inline(apiKeySchema)),
    identities: z.array(z.object({ provider_id: z.string(), subject: z.string(), email: z.string().nullable(), created_at: isoDate, last_used_at: isoDate.nullable() })),
    groups: z.array(z.object({ group_id: z.string(), name: z.string(), role: z.enum(['member', 'group_admin']), joined_at: isoDate })),
    conversations: z.array(conversationSchema.extend({ messages: z.array(inline(messageSchema)) })),
    conversation_shares: z.array(share('conversation_id')),
    tasks: z.array(taskSchema.extend({ steps: z.array(inline(stepSchema)) })),
    task_shares: z.array(share('task_id')),
    plans: z.array(inline(planSchema)),
    agents: z.array(inline(agentSchema)),
    agent_executions: z.array(inline(executionSchema)),
    presets: z.array(inline(presetSchema)),
    memories: z.array(inline(memorySchema)),
    prompts: z.array(z.object({ name: z.string(), content: z.string(), updated_at: isoDate })).meta({ description: 'the built-in prompts you changed' }),
    configs: z.array(inline(configSchema)).meta({ description: 'your personal settings; a secret one has `config_value: null`' }),
    providers: z.array(providerSchema.extend({ models: z.array(inline(modelSchema)) })),
    mcp_servers: z.array(inline(mcpServerSchema)),
    mcp_user_vars: z.array(z.object({ server_id: z.string(), keys: z.array(z.string()), updated_at: isoDate })).meta({ description: 'the names of the values you set for servers, never the values' }),
    connections: z.array(inline(connectionSchema)),
    files: z.array(inline(fileSchema)).meta({ description: '`access_url` is absolute here, and like everywhere valid 1 hour (avatars: a year)' }),
    workflows: z.array(workflowSchema.extend({ versions: z.array(inline(versionSchema)) })),
    workflow_sessions: z.array(sessionSchema.extend({ messages: z.array(sessionMessageListItem) })),
    tool_logs: z.array(inline(logSchema)),
  })
  .meta({ id: 'AccountExport' })

export type AccountExport = z.infer<typeof accountExportSchema>

export const deleteAccountBody = z.object({ password: z.string().max(1024).optional().meta({ description: 'your password; accounts without one (single sign-on) leave it out' }) }).optional()
