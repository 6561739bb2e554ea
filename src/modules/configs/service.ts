/**
 * @module Instance settings as grouped key/values (e.g. search API keys for tools). Known keys are
 * described; secret values are encrypted at rest and only ever shown as a hint.
 */
import { and, asc, count, eq } from 'drizzle-orm'
import type { Database } from '../../db/index.ts'
import { isUniqueViolation } from '../../db/errors.ts'
import { conflict, notFound } from '../../lib/errors.ts'
import { secretHint, type SecretBox } from '../../lib/secrets.ts'

/** The keys Hearth knows about, by group. Others may be stored too. */
export const KNOWN_CONFIGS: Record<string, Record<string, { description: string; secret: boolean }>> = {
  search: {
    google_api_key: { description: 'Google Programmable Search API key, for the web search tool', secret: true },
    google_cse_id: { description: 'Google Programmable Search engine id (cx)', secret: false },
    exa_api_key: { description: 'Exa API key, for the web search tool', secret: true },
  },
  chat: {
    title_model: { description: 'Model name used to title new conversations (default: the conversation’s own model)', secret: false },
    default_system_prompt: { description: 'System prompt for conversations that set none', secret: false },
  },
  general: {
    site_name: { description: 'Name shown by clients', secret: false },
  },
}

type ConfigRow = Database['t']['configs']['$inferSelect']

export function createConfigsService(deps: { database: Database; secrets: SecretBox }) {
  const { database, secrets } = deps
  const { db, t } = database

  /** plain values read by the server itself (chat reads some on every send): kept 5 s, dropped on every write here */
  const values = new Map<string, { value: string | null; at: number }>()
  const VALUE_TTL_MS = 5_000

  const isSecret = (group: string, name: string, flag?: boolean) => KNOWN_CONFIGS[group]?.[name]?.secret ?? flag ?? false

  async function toDto(c: ConfigRow) {
    return {
      id: c.id,
      config_group: c.configGroup,
      config_name: c.configName,
      config_value: c.configValue === null ? null : c.isSecret ? secretHint(await secrets.decrypt(c.configValue)) : c.configValue,
      is_secret: c.isSecret,
      created_at: c.createdAt.toISOString(),
      updated_at: c.updatedAt.toISOString(),
    }
  }

  async function get(id: string) {
    const [row] = await db.select().from(t.configs).where(eq(t.configs.id, id))
    if (!row) throw notFound('Config')
    return row
  }

  return {
    toDto,
    info: () =>
      Object.entries(KNOWN_CONFIGS).map(([group, names]) => ({
        config_group: group,
        names: Object.entries(names).map(([name, v]) => ({ config_name: name, ...v })),
      })),

    async list(filter: { group?: string; limit: number; offset: number }) {
      const where = filter.group ? eq(t.configs.configGroup, filter.group) : undefined
      const [rows, [total]] = await Promise.all([
        db.select().from(t.configs).where(where).orderBy(asc(t.configs.configGroup), asc(t.configs.configName)).limit(filter.limit).offset(filter.offset),
        db.select({ n: count() }).from(t.configs).where(where),
      ])
      return { rows, total: Number(total?.n ?? 0) }
    },

    get,

    async create(input: { config_group: string; config_name: string; config_value: string | null; is_secret?: boolean }) {
      const secret = isSecret(input.config_group, input.config_name, input.is_secret)
      try {
        const [row] = await db
          .insert(t.configs)
          .values({ configGroup: input.config_group, configName: input.config_name, isSecret: secret, configValue: input.config_value !== null && secret ? await secrets.encrypt(input.config_value) : input.config_value })
          .returning()
        values.clear()
        return row!
      } catch (error) {
        if (isUniqueViolation(error)) throw conflict(`${input.config_group}.${input.config_name} is already set; change it with PUT`)
        throw error
      }
    },

    async update(id: string, value: string | null) {
      const row = await get(id)
      const [updated] = await db
        .update(t.configs)
        .set({ configValue: value !== null && row.isSecret ? await secrets.encrypt(value) : value, updatedAt: new Date() })
        .where(eq(t.configs.id, id))
        .returning()
      values.clear()
      return updated!
    },

    async remove(id: string) {
      await get(id)
      await db.delete(t.configs).where(eq(t.configs.id, id))
      values.clear()
    },

    /** The plain value of a setting, for the server's own use (tools). */
    async value(group: string, name: string): Promise<string | null> {
      const key = `${group}.${name}`
      const hit = values.get(key)
      if (hit && Date.now() - hit.at < VALUE_TTL_MS) return hit.value
      const [row] = await db.select().from(t.configs).where(and(eq(t.configs.configGroup, group), eq(t.configs.configName, name)))
      const value = !row || row.configValue === null ? null : row.isSecret ? await secrets.decrypt(row.configValue) : row.configValue
      values.set(key, { value, at: Date.now() })
      return value
    },
  }
}

export type ConfigsService = ReturnType<typeof createConfigsService>
