/**
 * @module Groups: a set of users with settings of their own (default model, allowed models, preset,
 * system prompt, tools, rate limit), administered by admins and by the group's group admins. Each
 * user's *group effect* — what their groups together set (docs/api.md §21) — is kept in memory per
 * user and dropped on every instance, through the bus, when a group's settings, its members or the
 * group itself change: the hot paths (every request's rate limit, every model a run uses) read no
 * database.
 */
import { and, asc, count, eq, isNull, or, sql } from 'drizzle-orm'
import type { RateLimit } from '../../config.ts'
import { createChannelCache, defineChannel, type Bus } from '../../db/bus.ts'
import type { Database } from '../../db/index.ts'
import { isUniqueViolation } from '../../db/errors.ts'
import { containsText, pageWithTotal, type Page, type PageRequest } from '../../db/query.ts'
import { validationError } from '../../lib/errors.ts'
import type { Principal } from '../auth/service.ts'
import type { UsageService, UsageStats } from '../usage/service.ts'
import { unknownTools } from '../tools/errors.ts'
import { defaultModelNotAllowed, groupMemberNotFound, groupNameTaken, groupNotFound, unknownGroupModel, unknownGroupPreset, unknownGroupUser } from './errors.ts'

export type GroupRole = 'member' | 'group_admin'
export type GroupRow = Database['t']['groups']['$inferSelect']

export const MAX_SYSTEM_PROMPT = 20_000

/** A group's settings; `null`: the group does not set it. Stored in `groups.settings` with the wire's snake_case keys. */
export interface GroupSettings {
  defaultModelId: string | null
  allowedModelIds: string[] | null
  presetId: string | null
  systemPrompt: string | null
  tools: string[] | null
  /** requests per minute */
  rateLimit: number | null
}

const SETTING_KEYS = {
  defaultModelId: 'default_model_id',
  allowedModelIds: 'allowed_model_ids',
  presetId: 'preset_id',
  systemPrompt: 'system_prompt',
  tools: 'tools',
  rateLimit: 'rate_limit',
} as const satisfies Record<keyof GroupSettings, string>
const SETTINGS = Object.keys(SETTING_KEYS) as (keyof GroupSettings)[]

export function settingsOf(row: Pick<GroupRow, 'settings'>): GroupSettings {
  const stored = row.settings as Record<string, unknown>
  return Object.fromEntries(SETTINGS.map((k) => [k, stored[SETTING_KEYS[k]] ?? null])) as unknown as GroupSettings
}
const storedSettings = (s: GroupSettings) => Object.fromEntries(SETTINGS.map((k) => [SETTING_KEYS[k], s[k]]))

export interface Group extends GroupRow {
  memberCount: number
}

export interface GroupMember {
  userId: string
  username: string
  displayName: string | null
  email: string
  role: GroupRole
  joinedAt: Date
}

export interface Membership {
  group: GroupRow
  role: GroupRole
  joinedAt: Date
}

/** A setting and the group it comes from. */
export interface FromGroup<T> {
  value: T
  groupId: string
}

/**
 * What a user's groups set, together (docs/api.md §21): scalars from the oldest membership that sets
 * them; `allowedModelIds` the union of the lists set (null: no group sets one, no restriction);
 * `tools` the union; `rateLimit` the highest set.
 */
export interface GroupEffect {
  defaultModelId: FromGroup<string> | null
  presetId: FromGroup<string> | null
  systemPrompt: FromGroup<string> | null
  allowedModelIds: { value: ReadonlySet<string>; groupIds: string[] } | null
  tools: { value: string[]; groupIds: string[] } | null
  rateLimit: FromGroup<number> | null
}

const NO_EFFECT: GroupEffect = { defaultModelId: null, presetId: null, systemPrompt: null, allowedModelIds: null, tools: null, rateLimit: null }

/** Combine the settings of a user's groups, given oldest membership first. */
export function combineGroups(groups: { id: string; settings: GroupSettings }[]): GroupEffect {
  if (!groups.length) return NO_EFFECT
  const first = <K extends 'defaultModelId' | 'presetId' | 'systemPrompt'>(k: K) => {
    const g = groups.find((g) => g.settings[k] !== null)
    return g ? { value: g.settings[k]!, groupId: g.id } : null
  }
  const union = (k: 'allowedModelIds' | 'tools') => {
    const setting = groups.filter((g) => g.settings[k] !== null)
    return setting.length ? { value: new Set(setting.flatMap((g) => g.settings[k]!)), groupIds: setting.map((g) => g.id) } : null
  }
  const tools = union('tools')
  let rateLimit: FromGroup<number> | null = null
  for (const g of groups) if (g.settings.rateLimit !== null && (!rateLimit || g.settings.rateLimit > rateLimit.value)) rateLimit = { value: g.settings.rateLimit, groupId: g.id }
  return {
    defaultModelId: first('defaultModelId'),
    presetId: first('presetId'),
    systemPrompt: first('systemPrompt'),
    allowedModelIds: union('allowedModelIds'),
    tools: tools && { value: [...tools.value], groupIds: tools.groupIds },
    rateLimit,
  }
}

/** Whose group effect may have changed: every instance drops those users' cached effects. */
const groupsChannel = defineChannel<{ userIds: string[] }>('groups')

export function createGroupsService(deps: {
  database: Database
  bus: Bus
  /** HEARTH_RATE_LIMIT: a member's limit when no group of theirs sets one */
  instanceRateLimit: RateLimit
  usage: Pick<UsageService, 'statsOf'>
  /** the names among these that are no tool the caller may use (tools.unknownOf), as presets check theirs */
  unknownTools: (p: Principal, names: readonly string[]) => Promise<string[]>
}) {
  const { database } = deps
  const { db, t } = database
  const g = t.groups
  const gm = t.groupMembers

  const limitOf = (e: GroupEffect): RateLimit => (e.rateLimit ? { limit: e.rateLimit.value, windowMs: 60_000 } : deps.instanceRateLimit)

  /** user id → their group effect, kept until one of their groups or memberships changes on any instance */
  const effects = createChannelCache<string, GroupEffect, { userIds: string[] }>(deps.bus, groupsChannel, { maxSize: 50_000, staleKeys: ({ userIds }) => userIds })
  const changed = (userIds: string[]) => (userIds.length ? effects.changed({ userIds }) : Promise.resolve())
  const memberIdsOf = async (groupId: string) => (await db.select({ id: gm.userId }).from(gm).where(eq(gm.groupId, groupId))).map((r) => r.id)

  const oldestFirst = [asc(gm.createdAt), asc(gm.groupId)]
  const effectRows = db
    .select({ id: g.id, settings: g.settings })
    .from(gm)
    .innerJoin(g, eq(g.id, gm.groupId))
    .where(eq(gm.userId, sql.placeholder('user')))
    .orderBy(...oldestFirst)
    .prepare('group_effect_of')

  function effectOf(userId: string): GroupEffect | Promise<GroupEffect> {
    if (effects.has(userId)) return effects.get(userId)
    return effects.load(userId, async () => combineGroups((await effectRows.execute({ user: userId })).map((r) => ({ id: r.id, settings: settingsOf(r) }))))
  }

  const memberCount = sql<number>`(SELECT count(*) FROM ${gm} WHERE ${gm.groupId} = ${g.id})`.mapWith(Number)

  async function get(id: string): Promise<Group> {
    const [row] = await db
      .select({ group: g, memberCount })
      .from(g)
      .where(eq(g.id, id))
    if (!row) throw groupNotFound()
    return { ...row.group, memberCount: row.memberCount }
  }

  /** 404 unless `p` is an admin or a group admin of the group (and the group exists). */
  async function administered(p: Principal, id: string): Promise<void> {
    if (p.role === 'admin') return void (await get(id))
    const [row] = await db.select({ role: gm.role }).from(gm).where(and(eq(gm.groupId, id), eq(gm.userId, p.userId)))
    if (row?.role !== 'group_admin') throw groupNotFound()
  }

  /** The global models a reference (a catalogue id or a model name) stands for, oldest first. */
  async function globalModelIds(ref: string): Promise<string[]> {
    const rows = await db
      .select({ id: t.models.id })
      .from(t.models)
      .innerJoin(t.providers, eq(t.providers.id, t.models.providerId))
      .where(and(eq(t.providers.scope, 'global'), or(eq(t.models.id, ref), eq(t.models.name, ref))))
      .orderBy(asc(t.providers.createdAt), asc(t.models.createdAt))
    return rows.map((r) => r.id)
  }

  /**
   * The settings after `patch` (fields sent are set, `null` clears), checked: models must be global
   * (a name is stored as the catalogue ids of the global models of that name), the preset global, the
   * tools known. `at` prefixes the field paths of a 422 (`settings.` inside a group's body).
   */
  async function nextSettings(p: Principal, current: GroupSettings, patch: Partial<GroupSettings>, at: string): Promise<GroupSettings> {
    const next = { ...current }
    for (const k of SETTINGS) if (patch[k] !== undefined) (next as Record<string, unknown>)[k] = patch[k]
    if (patch.allowedModelIds) {
      const ids: string[] = []
      for (const ref of patch.allowedModelIds) {
        const found = await globalModelIds(ref)
        if (!found.length) throw unknownGroupModel(`${at}allowed_model_ids`, ref)
        ids.push(...found)
      }
      next.allowedModelIds = [...new Set(ids)]
    }
    if (patch.defaultModelId) {
      const [id] = await globalModelIds(patch.defaultModelId)
      if (!id) throw unknownGroupModel(`${at}default_model_id`, patch.defaultModelId)
      next.defaultModelId = id
    }
    if (next.defaultModelId && next.allowedModelIds && !next.allowedModelIds.includes(next.defaultModelId)) throw defaultModelNotAllowed(`${at}default_model_id`)
    if (patch.presetId) {
      const [preset] = await db.select({ id: t.presets.id }).from(t.presets).where(and(eq(t.presets.id, patch.presetId), isNull(t.presets.userId)))
      if (!preset) throw unknownGroupPreset(`${at}preset_id`)
    }
    if (patch.tools) {
      next.tools = [...new Set(patch.tools)]
      const unknown = await deps.unknownTools(p, next.tools)
      if (unknown.length) {
        const e = unknownTools(unknown)
        throw validationError(e.detail, e.errors?.map((f) => ({ ...f, path: `${at}tools` })))
      }
    }
    return next
  }

  const asNameTaken = (error: unknown) => (isUniqueViolation(error) ? groupNameTaken() : error)

  const memberColumns = { userId: gm.userId, username: t.users.username, displayName: t.users.displayName, email: t.users.email, role: gm.role, joinedAt: gm.createdAt }

  return {
    get,

    /** Groups by name (case-insensitive), `q` a substring of the name or description. */
    async list(filter: { q?: string }, page: PageRequest): Promise<Page<Group>> {
      const where = filter.q ? or(containsText(g.name, filter.q), containsText(g.description, filter.q)) : undefined
      const { rows, total } = await pageWithTotal(
        db.select({ group: g, memberCount }).from(g).where(where).orderBy(sql`lower(${g.name})`, asc(g.id)).limit(page.limit).offset(page.offset),
        db.select({ n: count() }).from(g).where(where),
      )
      return { rows: rows.map((r) => ({ ...r.group, memberCount: r.memberCount })), total }
    },

    async create(p: Principal, input: { name: string; description?: string | null; settings?: Partial<GroupSettings> }): Promise<Group> {
      const settings = await nextSettings(p, settingsOf({ settings: {} }), input.settings ?? {}, 'settings.')
      try {
        const [row] = await db.insert(g).values({ name: input.name, description: input.description ?? null, settings: storedSettings(settings) }).returning()
        return { ...row!, memberCount: 0 }
      } catch (error) {
        throw asNameTaken(error)
      }
    },

    async update(p: Principal, id: string, input: { name?: string; description?: string | null; settings?: Partial<GroupSettings> }): Promise<Group> {
      const before = await get(id)
      const values: Partial<Database['t']['groups']['$inferInsert']> = { updatedAt: new Date() }
      if (input.name !== undefined) values.name = input.name
      if (input.description !== undefined) values.description = input.description
      if (input.settings) values.settings = storedSettings(await nextSettings(p, settingsOf(before), input.settings, 'settings.'))
      try {
        const [row] = await db.update(g).set(values).where(eq(g.id, id)).returning()
        if (!row) throw groupNotFound()
        if (input.settings) await changed(await memberIdsOf(id))
        return { ...row, memberCount: before.memberCount }
      } catch (error) {
        throw asNameTaken(error)
      }
    },

    async remove(id: string) {
      const members = await memberIdsOf(id)
      const [row] = await db.delete(g).where(eq(g.id, id)).returning({ id: g.id })
      if (!row) throw groupNotFound()
      await changed(members)
    },

    /** The settings of a group `p` administers: an admin, or a group admin of this group; 404 for anyone else. */
    async settingsFor(p: Principal, id: string): Promise<GroupSettings> {
      await administered(p, id)
      return settingsOf(await get(id))
    },

    async setSettings(p: Principal, id: string, patch: Partial<GroupSettings>): Promise<GroupSettings> {
      await administered(p, id)
      const next = await nextSettings(p, settingsOf(await get(id)), patch, '')
      const [row] = await db.update(g).set({ settings: storedSettings(next), updatedAt: new Date() }).where(eq(g.id, id)).returning({ id: g.id })
      if (!row) throw groupNotFound()
      await changed(await memberIdsOf(id))
      return next
    },

    /** Add a user to the group, or change the role of a member; `added` tells which. */
    async setMember(groupId: string, userId: string, role: GroupRole): Promise<{ member: GroupMember; added: boolean }> {
      await get(groupId)
      const [user] = await db.select({ id: t.users.id }).from(t.users).where(eq(t.users.id, userId))
      if (!user) throw unknownGroupUser()
      const [before] = await db.select({ role: gm.role }).from(gm).where(and(eq(gm.groupId, groupId), eq(gm.userId, userId)))
      if (before) await db.update(gm).set({ role }).where(and(eq(gm.groupId, groupId), eq(gm.userId, userId)))
      // two requests adding the same member at once: the second keeps the first's row, with this role
      else await db.insert(gm).values({ groupId, userId, role }).onConflictDoUpdate({ target: [gm.groupId, gm.userId], set: { role } })
      await changed([userId])
      const [member] = await db.select(memberColumns).from(gm).innerJoin(t.users, eq(t.users.id, gm.userId)).where(and(eq(gm.groupId, groupId), eq(gm.userId, userId)))
      if (!member) throw groupMemberNotFound()
      return { member, added: !before }
    },

    async removeMember(groupId: string, userId: string) {
      await get(groupId)
      const [row] = await db.delete(gm).where(and(eq(gm.groupId, groupId), eq(gm.userId, userId))).returning({ id: gm.userId })
      if (!row) throw groupMemberNotFound()
      await changed([userId])
    },

    /** The group's members, oldest membership first. */
    async members(groupId: string, page: PageRequest): Promise<Page<GroupMember>> {
      await get(groupId)
      const where = eq(gm.groupId, groupId)
      return pageWithTotal(
        db.select(memberColumns).from(gm).innerJoin(t.users, eq(t.users.id, gm.userId)).where(where).orderBy(...oldestFirst, asc(gm.userId)).limit(page.limit).offset(page.offset),
        db.select({ n: count() }).from(gm).where(where),
      )
    },

    /**
     * The members of a group `p` administers, each with their usage: an admin sees everyone's; a group
     * admin only that of members who let them (`usage_visible_to_group_admins`), else `usage` is null.
     */
    async membersWithUsage(p: Principal, groupId: string, page: PageRequest): Promise<Page<GroupMember & { usage: UsageStats | null }>> {
      await administered(p, groupId)
      const where = eq(gm.groupId, groupId)
      const { rows, total } = await pageWithTotal(
        db
          .select({ ...memberColumns, visible: t.users.usageVisibleToGroupAdmins })
          .from(gm)
          .innerJoin(t.users, eq(t.users.id, gm.userId))
          .where(where)
          .orderBy(...oldestFirst, asc(gm.userId))
          .limit(page.limit)
          .offset(page.offset),
        db.select({ n: count() }).from(gm).where(where),
      )
      const items = await Promise.all(
        rows.map(async ({ visible, ...m }) => ({ ...m, usage: p.role === 'admin' || visible || m.userId === p.userId ? await deps.usage.statsOf(m.userId) : null })),
      )
      return { rows: items, total }
    },

    /** The caller's groups, oldest membership first. */
    async membershipsOf(userId: string, page: PageRequest): Promise<Page<Membership>> {
      const where = eq(gm.userId, userId)
      return pageWithTotal(
        db.select({ group: g, role: gm.role, joinedAt: gm.createdAt }).from(gm).innerJoin(g, eq(g.id, gm.groupId)).where(where).orderBy(...oldestFirst).limit(page.limit).offset(page.offset),
        db.select({ n: count() }).from(gm).where(where),
      )
    },

    /** What the user's groups set together, from memory (one read per user after a change). */
    effectOf,

    /** The user's request limit: the highest `rate_limit` of their groups (per minute), else HEARTH_RATE_LIMIT; from memory once known. */
    rateLimitOf(userId: string): RateLimit | Promise<RateLimit> {
      const e = effectOf(userId)
      return e instanceof Promise ? e.then(limitOf) : limitOf(e)
    },
  }
}

export type GroupsService = ReturnType<typeof createGroupsService>

