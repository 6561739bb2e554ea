/**
 * @module Instance settings as grouped key/values (e.g. search API keys for tools). Known keys are
 * described; secret values are encrypted at rest and only ever shown as a hint.
 */
import { and, asc, eq } from 'drizzle-orm'
import { createChannelCache, defineChannel, type Bus } from '../../db/bus.ts'
import type { Database } from '../../db/index.ts'
import { isUniqueViolation } from '../../db/errors.ts'
import { pageOfTable, type Page, type PageRequest } from '../../db/query.ts'
import { secretHint, type SecretBox } from '../../lib/secrets.ts'
import { configAlreadySet, configNotFound } from './errors.ts'

/** The keys Hearth knows about, by group. Others may be stored too. */
const KNOWN_CONFIGS: Record<string, Record<string, { description: string; secret: boolean }>> = {
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

/** A setting as admins see it: the row, and `shownValue` — the value itself, or only a hint of a secret one. */
export type ShownConfig = ConfigRow & { shownValue: string | null }

export interface ConfigInput {
  group: string
  name: string
  value: string | null
  /** asked for; a name Hearth knows as secret is stored as a secret whatever this says */
  isSecret?: boolean
}

/** A setting was created, changed or deleted: every instance drops its cached values. */
const configsChannel = defineChannel<Record<string, never>>('configs')

export function createConfigsService(deps: { database: Database; bus: Bus; secrets: SecretBox }) {
  const { database, secrets } = deps
  const { db, t } = database

  /** plain values read by the server itself (chat reads some on every send), kept until a setting changes on any instance */
  const values = createChannelCache<string, string | null, Record<string, never>>(deps.bus, configsChannel, { maxSize: 1_000 })
  const changed = () => values.changed({})

  const isSecret = (group: string, name: string, flag?: boolean) => KNOWN_CONFIGS[group]?.[name]?.secret ?? flag ?? false

  async function shown(c: ConfigRow): Promise<ShownConfig> {
    return { ...c, shownValue: c.configValue === null ? null : c.isSecret ? secretHint(await secrets.decrypt(c.configValue)) : c.configValue }
  }

  async function find(id: string): Promise<ConfigRow> {
    const [row] = await db.select().from(t.configs).where(eq(t.configs.id, id))
    if (!row) throw configNotFound()
    return row
  }

  return {
    /** the known groups and names */
    info: () =>
      Object.entries(KNOWN_CONFIGS).map(([group, names]) => ({
        group,
        names: Object.entries(names).map(([name, v]) => ({ name, ...v })),
      })),

    async list(filter: PageRequest & { group?: string }): Promise<Page<ShownConfig>> {
      const where = filter.group ? eq(t.configs.configGroup, filter.group) : undefined
      const { rows, total } = await pageOfTable(db, t.configs, where, [asc(t.configs.configGroup), asc(t.configs.configName)], filter)
      return { rows: await Promise.all(rows.map(shown)), total }
    },

    get: async (id: string): Promise<ShownConfig> => shown(await find(id)),

    async create(input: ConfigInput): Promise<ShownConfig> {
      const secret = isSecret(input.group, input.name, input.isSecret)
      const configValue = input.value !== null && secret ? await secrets.encrypt(input.value) : input.value
      const [row] = await db
        .insert(t.configs)
        .values({ configGroup: input.group, configName: input.name, isSecret: secret, configValue })
        .returning()
        .catch((error) => {
          throw isUniqueViolation(error) ? configAlreadySet(input.group, input.name) : error
        })
      await changed()
      return shown(row!)
    },

    async update(id: string, value: string | null): Promise<ShownConfig> {
      const row = await find(id)
      const [updated] = await db
        .update(t.configs)
        .set({ configValue: value !== null && row.isSecret ? await secrets.encrypt(value) : value, updatedAt: new Date() })
        .where(eq(t.configs.id, id))
        .returning()
      await changed()
      return shown(updated!)
    },

    async remove(id: string) {
      await find(id)
      await db.delete(t.configs).where(eq(t.configs.id, id))
      await changed()
    },

    /** The plain value of a setting, for the server's own use (tools). */
    async value(group: string, name: string): Promise<string | null> {
      return values.load(`${group}.${name}`, async () => {
        const [row] = await db.select().from(t.configs).where(and(eq(t.configs.configGroup, group), eq(t.configs.configName, name)))
        return !row || row.configValue === null ? null : row.isSecret ? await secrets.decrypt(row.configValue) : row.configValue
      })
    },
  }
}

export type ConfigsService = ReturnType<typeof createConfigsService>
