/**
 * @module Settings as grouped key/values (search API keys for tools, the title model, …): global
 * ones kept by admins, personal ones kept by every user for themselves. Known keys are described;
 * secret values are encrypted at rest and only ever shown as a hint — a global one, to non-admins,
 * not even that. Group and name are lower-case: whatever case a caller writes is folded.
 */
import { and, asc, eq, isNull, or, sql, type SQL } from 'drizzle-orm'
import { createChannelCache, defineChannel, type Bus } from '../../db/bus.ts'
import type { Database } from '../../db/index.ts'
import { isUniqueViolation } from '../../db/errors.ts'
import { pageOfTable, type Page, type PageRequest } from '../../db/query.ts'
import type { OutboundGuard } from '../../lib/outbound.ts'
import { secretHint, type SecretBox } from '../../lib/secrets.ts'
import { configAlreadySet, configNotFound, globalConfigAdminOnly, globalConfigCreateAdminOnly } from './errors.ts'

interface KnownConfig {
  description: string
  secret: boolean
  /** an address the server sends requests to: checked by the outbound guard when set (lib/outbound.ts) */
  url?: true
}

/** The keys Hearth knows about, by group. Others may be stored too. */
const KNOWN_CONFIGS: Record<string, Record<string, KnownConfig>> = {
  search: {
    google_api_key: { description: 'Google Programmable Search API key, for the web search tool', secret: true },
    google_cse_id: { description: 'Google Programmable Search engine id (cx)', secret: false },
    google_base_url: { description: 'Google Programmable Search endpoint (default https://www.googleapis.com/customsearch/v1)', secret: false, url: true },
    exa_api_key: { description: 'Exa API key, for the web search tool', secret: true },
    exa_base_url: { description: 'Exa API root (default https://api.exa.ai)', secret: false, url: true },
  },
  tools: {
    requires_approval: { description: "Comma-separated built-in tool names (e.g. http_fetch,web_search) whose calls wait for the user's approval; a personal value replaces the global one", secret: false },
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

export type ConfigScope = 'personal' | 'global'

/** Who asks: the user, and whether they are an admin. */
export interface ConfigCaller {
  userId: string
  role: string
}

/** A setting as its caller sees it: the row, its scope, and `shownValue` — the value itself, a hint of a secret one, or null for a global secret shown to a non-admin. */
export type ShownConfig = ConfigRow & { scope: ConfigScope; shownValue: string | null }

export interface ConfigInput {
  group: string
  name: string
  value: string | null
  /** asked for; a name Hearth knows as secret is stored as a secret whatever this says */
  isSecret?: boolean
  /** default: global for an admin, personal for everyone else */
  scope?: ConfigScope
}

/** A value the server reads for a user, and whose it is. */
export interface Setting {
  value: string
  scope: ConfigScope
}

/** A setting was created, changed or deleted: every instance drops its cached values. */
const configsChannel = defineChannel<Record<string, never>>('configs')

export function createConfigsService(deps: { database: Database; bus: Bus; secrets: SecretBox; outbound: OutboundGuard }) {
  const { database, secrets, outbound } = deps
  const { db, t } = database

  /** plain values read by the server itself (chat reads some on every send, tools on every call), by owner ('' = global), kept until a setting changes on any instance */
  const values = createChannelCache<string, string | null, Record<string, never>>(deps.bus, configsChannel, { maxSize: 10_000 })
  const changed = () => values.changed({})

  const known = (group: string, name: string): KnownConfig | undefined => KNOWN_CONFIGS[group]?.[name]
  const isAdmin = (c: ConfigCaller) => c.role === 'admin'
  const scopeOf = (row: ConfigRow): ConfigScope => (row.userId === null ? 'global' : 'personal')
  /** the global settings and the caller's own */
  const visible = (c: ConfigCaller): SQL => or(isNull(t.configs.userId), eq(t.configs.userId, c.userId))!

  async function shown(c: ConfigCaller, row: ConfigRow): Promise<ShownConfig> {
    const scope = scopeOf(row)
    const hidden = row.configValue === null || (row.isSecret && scope === 'global' && !isAdmin(c))
    const shownValue = hidden ? null : row.isSecret ? secretHint(await secrets.decrypt(row.configValue!)) : row.configValue
    return { ...row, scope, shownValue }
  }

  async function findVisible(c: ConfigCaller, id: string): Promise<ConfigRow> {
    const [row] = await db.select().from(t.configs).where(and(eq(t.configs.id, id), visible(c)))
    if (!row) throw configNotFound()
    return row
  }

  /** visible and changeable by the caller: personal ones by their owner, global ones by admins */
  async function findWritable(c: ConfigCaller, id: string): Promise<ConfigRow> {
    const row = await findVisible(c, id)
    if (row.userId === null && !isAdmin(c)) throw globalConfigAdminOnly()
    return row
  }

  /** a URL setting at a private address is for admins, like a provider's base_url */
  const checkUrl = (c: ConfigCaller, row: { configGroup: string; configName: string }, value: string | null) =>
    known(row.configGroup, row.configName)?.url ? outbound.check(c, value, 'config_value') : Promise.resolve()

  const seal = async (value: string | null, secret: boolean) => (value !== null && secret ? secrets.encrypt(value) : value)

  /** the plain value of one row, cached; `owner` null: the global one */
  function plain(owner: string | null, group: string, name: string): Promise<string | null> {
    return values.load(`${owner ?? ''}\u0000${group}\u0000${name}`, async () => {
      const whose = owner === null ? isNull(t.configs.userId) : eq(t.configs.userId, owner)
      const [row] = await db.select().from(t.configs).where(and(whose, eq(t.configs.configGroup, group), eq(t.configs.configName, name)))
      return !row || row.configValue === null ? null : row.isSecret ? await secrets.decrypt(row.configValue) : row.configValue
    })
  }

  /** The user's own value of a setting, else the global one (a personal value set to null does not count), and whose it is. */
  async function settingFor(userId: string, group: string, name: string): Promise<Setting | null> {
    const [g, n] = [group.toLowerCase(), name.toLowerCase()]
    const personal = await plain(userId, g, n)
    if (personal !== null) return { value: personal, scope: 'personal' }
    const global = await plain(null, g, n)
    return global === null ? null : { value: global, scope: 'global' }
  }

  return {
    /** the known groups and names */
    info: () =>
      Object.entries(KNOWN_CONFIGS).map(([group, names]) => ({
        group,
        names: Object.entries(names).map(([name, v]) => ({ name, description: v.description, secret: v.secret })),
      })),

    /** the global settings and the caller's own, by group and name (a global one before a personal one of the same name) */
    async list(c: ConfigCaller, filter: PageRequest & { group?: string; scope?: ConfigScope }): Promise<Page<ShownConfig>> {
      const where = and(
        visible(c),
        filter.group ? eq(t.configs.configGroup, filter.group.toLowerCase()) : undefined,
        filter.scope === 'global' ? isNull(t.configs.userId) : filter.scope === 'personal' ? eq(t.configs.userId, c.userId) : undefined,
      )
      const order = [asc(t.configs.configGroup), asc(t.configs.configName), sql`CASE WHEN ${t.configs.userId} IS NULL THEN 0 ELSE 1 END`, asc(t.configs.id)]
      const { rows, total } = await pageOfTable(db, t.configs, where, order, filter)
      return { rows: await Promise.all(rows.map((r) => shown(c, r))), total }
    },

    get: async (c: ConfigCaller, id: string): Promise<ShownConfig> => shown(c, await findVisible(c, id)),

    async create(c: ConfigCaller, input: ConfigInput): Promise<ShownConfig> {
      const scope = input.scope ?? (isAdmin(c) ? 'global' : 'personal')
      if (scope === 'global' && !isAdmin(c)) throw globalConfigCreateAdminOnly()
      const [configGroup, configName] = [input.group.toLowerCase(), input.name.toLowerCase()]
      await checkUrl(c, { configGroup, configName }, input.value)
      const isSecret = known(configGroup, configName)?.secret ?? input.isSecret ?? false
      const [row] = await db
        .insert(t.configs)
        .values({ userId: scope === 'personal' ? c.userId : null, configGroup, configName, isSecret, configValue: await seal(input.value, isSecret) })
        .returning()
        .catch((error) => {
          throw isUniqueViolation(error) ? configAlreadySet(configGroup, configName) : error
        })
      await changed()
      return shown(c, row!)
    },

    async update(c: ConfigCaller, id: string, value: string | null): Promise<ShownConfig> {
      const row = await findWritable(c, id)
      await checkUrl(c, row, value)
      const [updated] = await db
        .update(t.configs)
        .set({ configValue: await seal(value, row.isSecret), updatedAt: new Date() })
        .where(eq(t.configs.id, id))
        .returning()
      await changed()
      return shown(c, updated!)
    },

    async remove(c: ConfigCaller, id: string) {
      await findWritable(c, id)
      await db.delete(t.configs).where(eq(t.configs.id, id))
      await changed()
    },

    /** The plain value of a global setting, for the server's own use (chat's title model, default prompt). */
    value: (group: string, name: string): Promise<string | null> => plain(null, group.toLowerCase(), name.toLowerCase()),

    settingFor,

    /** The plain value a user's tool calls use: their personal one, else the global one. */
    valueFor: async (userId: string, group: string, name: string): Promise<string | null> => (await settingFor(userId, group, name))?.value ?? null,
  }
}

export type ConfigsService = ReturnType<typeof createConfigsService>
