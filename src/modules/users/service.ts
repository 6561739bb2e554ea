/** @module Users: creation, lookup, profile, preferences, credits and the admin's user management. No HTTP types here. */
import { and, asc, count, eq, or, sql, type SQL } from 'drizzle-orm'
import { createChannelCache, defineChannel, type Bus } from '../../db/bus.ts'
import type { Database, Db } from '../../db/index.ts'
import { withLock } from '../../db/lock.ts'
import { isUniqueViolation, violatedConstraint } from '../../db/errors.ts'
import { containsText, pageOfTable, type Page, type PageRequest } from '../../db/query.ts'
import type { ModelUsable } from '../../generation/model-turn.ts'
import type { Principal } from '../auth/service.ts'
import { lastActiveAdmin, unusableDefaultModel, userNotFound, usernameOrEmailTaken } from './errors.ts'

export type Role = 'user' | 'admin'
export type UserRow = Database['t']['users']['$inferSelect']

export interface NewUser {
  username: string
  email: string
  password: string
  displayName?: string | null
  /** unset: `admin` while no active admin exists (the first account), else `user` */
  role?: Role
  emailVerified?: boolean
}

/** Argon2id with OWASP's recommended minimum (19 MiB, 2 passes): ~35 ms here, off the event loop. */
export const hashPassword = (password: string) => Bun.password.hash(password, { algorithm: 'argon2id', memoryCost: 19456, timeCost: 2 })

const PREFERENCE_DEFAULTS = {
  language: 'en' as 'zh' | 'en',
  theme: 'system' as 'light' | 'dark' | 'system',
  default_model_id: null as string | null,
  default_connection_id: null as string | null,
  view_mode: 'user' as 'user' | 'developer',
  context_rounds: 10,
  memory_enabled: false,
}
export type Preferences = typeof PREFERENCE_DEFAULTS

export const preferencesOf = (u: Pick<UserRow, 'preferences'>): Preferences => ({ ...PREFERENCE_DEFAULTS, ...(u.preferences as Partial<Preferences>) })

/**
 * Create a user; a taken username or email is a 409 naming which. With no role given, the account
 * created while no active admin exists becomes admin (registration lets that happen only with the
 * setup token): decided inside the insert, under a lock, so two simultaneous first registrations
 * cannot both become admin.
 */
export async function createUser(database: Database, input: NewUser): Promise<UserRow> {
  const { db, t } = database
  const passwordHash = await hashPassword(input.password)
  const role: Role | SQL =
    input.role ?? sql`(CASE WHEN EXISTS (SELECT 1 FROM ${t.users} WHERE ${t.users.role} = 'admin' AND ${t.users.isActive} = ${true}) THEN 'user' ELSE 'admin' END)`
  const insert = (q: Db) =>
    q
      .insert(t.users)
      .values({
        username: input.username,
        email: input.email.toLowerCase(),
        passwordHash,
        displayName: input.displayName ?? null,
        role: role as Role,
        emailVerified: input.emailVerified ?? false,
      })
      .returning()
  try {
    const [row] = input.role === undefined ? await withLock(database, 'first-user', insert) : await insert(db)
    return row!
  } catch (error) {
    if (isUniqueViolation(error)) {
      throw usernameOrEmailTaken(violatedConstraint(error)?.includes('email') ? 'email' : 'username')
    }
    throw error
  }
}

/** A user's row or preferences changed: every instance drops its cached profile. */
const usersChannel = defineChannel<{ id: string }>('users')

/**
 * A cached profile. An entry is never changed, only replaced, so callers may memoise what they
 * derive from one (its JSON, say) per entry object.
 */
export interface Profile {
  user: UserRow
  preferences: Preferences
}

export function createUsersService(deps: {
  database: Database
  bus: Bus
  /** whether a user may use the model a reference names: `default_model_id` is checked when it is set */
  modelUsable: ModelUsable
}) {
  const { database, bus } = deps
  const { db, t } = database
  /** user id → the user and preferences, for the hot reads (/auth/me, /users/me), kept until the user changes on any instance */
  const profiles = createChannelCache<string, Profile, { id: string }>(bus, usersChannel, { maxSize: 50_000, staleKeys: ({ id }) => [id] })
  const changed = (id: string) => profiles.changed({ id })
  // Lookups by a unique key carry no LIMIT: Drizzle binds it as a parameter, which makes bun:sqlite ~2.5× slower here.
  const byId = db.select().from(t.users).where(eq(t.users.id, sql.placeholder('id'))).prepare('users_by_id')
  /** true while an active admin other than `id` exists: the guard that keeps the last one */
  const anotherActiveAdmin = (id: string) => sql`(SELECT count(*) FROM ${t.users} WHERE ${t.users.role} = 'admin' AND ${t.users.isActive} = ${true} AND ${t.users.id} <> ${id}) > 0`

  async function get(id: string): Promise<UserRow> {
    const [row] = await byId.execute({ id })
    if (!row) throw userNotFound()
    return row
  }

  async function update(id: string, values: Partial<Database['t']['users']['$inferInsert']>): Promise<UserRow> {
    const [row] = await db
      .update(t.users)
      .set({ ...values, updatedAt: new Date() })
      .where(eq(t.users.id, id))
      .returning()
    if (!row) throw userNotFound()
    await changed(id)
    return row
  }

  return {
    get,

    /** The user and preferences, served from memory: a change drops the entry on every instance at once. */
    async profile(id: string): Promise<Profile> {
      if (profiles.has(id)) return profiles.get(id)
      return profiles.load(id, async () => {
        const user = await get(id)
        return { user, preferences: preferencesOf(user) }
      })
    },

    updateProfile: (id: string, patch: { displayName?: string | null; avatarUrl?: string | null }) => update(id, patch),

    /** Set the fields `patch` names; a `default_model_id` the user cannot use is a 422 naming it. */
    async setPreferences(p: Principal, patch: Partial<Preferences>): Promise<Preferences> {
      const id = p.userId
      if (patch.default_model_id && !(await deps.modelUsable(p, patch.default_model_id))) throw unusableDefaultModel()
      const current = preferencesOf(await get(id))
      const next = { ...current, ...patch }
      await update(id, { preferences: next })
      return next
    },

    /**
     * The privacy settings `patch` names (docs/api.md §5 "Privacy"), in one write: the two privacy
     * columns and the `memory_enabled` preference, which is the same setting as in the preferences.
     */
    async setPrivacy(id: string, patch: { historyRetentionDays?: number | null; usageVisibleToGroupAdmins?: boolean; memoryEnabled?: boolean }): Promise<UserRow> {
      const values: Partial<Database['t']['users']['$inferInsert']> = {}
      if (patch.historyRetentionDays !== undefined) values.historyRetentionDays = patch.historyRetentionDays
      if (patch.usageVisibleToGroupAdmins !== undefined) values.usageVisibleToGroupAdmins = patch.usageVisibleToGroupAdmins
      if (patch.memoryEnabled !== undefined) values.preferences = { ...preferencesOf(await get(id)), memory_enabled: patch.memoryEnabled }
      return update(id, values)
    },

    /** Users matching the filter, oldest first; `q` is a case-insensitive substring of username, email or display name. */
    list(filter: { q?: string; role?: Role; isActive?: boolean }, page: PageRequest): Promise<Page<UserRow>> {
      const conditions: (SQL | undefined)[] = []
      if (filter.q) conditions.push(or(containsText(t.users.username, filter.q), containsText(t.users.email, filter.q), containsText(t.users.displayName, filter.q)))
      if (filter.role) conditions.push(eq(t.users.role, filter.role))
      if (filter.isActive !== undefined) conditions.push(eq(t.users.isActive, filter.isActive))
      return pageOfTable(db, t.users, and(...conditions), [asc(t.users.createdAt), asc(t.users.id)], page)
    },

    /**
     * An admin's change to a user. Demoting, disabling or deleting the last active admin is refused
     * (checked inside the same statement, so it holds under concurrent requests on SQLite).
     */
    async adminUpdate(id: string, patch: { role?: Role; isActive?: boolean; creditsDelta?: number; storageQuota?: number | null }): Promise<{ user: UserRow; roleChanged: boolean; disabled: boolean }> {
      const before = await get(id)
      const losesAdmin = before.role === 'admin' && before.isActive && (patch.role === 'user' || patch.isActive === false)
      const values: Record<string, unknown> = { updatedAt: new Date() }
      if (patch.role !== undefined) values.role = patch.role
      if (patch.isActive !== undefined) values.isActive = patch.isActive
      if (patch.creditsDelta) values.creditBalance = sql`${t.users.creditBalance} + ${patch.creditsDelta}`
      // lowering a quota below what is used keeps the files; only new uploads are refused
      if (patch.storageQuota !== undefined) values.storageQuota = patch.storageQuota
      const roleChanged = patch.role !== undefined && patch.role !== before.role
      const disabled = patch.isActive === false && before.isActive
      if (roleChanged || disabled) values.tokensValidAfter = new Date()
      const [row] = await db
        .update(t.users)
        .set(values)
        .where(and(eq(t.users.id, id), losesAdmin ? anotherActiveAdmin(id) : undefined))
        .returning()
      if (!row) throw lastActiveAdmin()
      await changed(id)
      return { user: row, roleChanged, disabled }
    },

    async remove(id: string): Promise<void> {
      const before = await get(id)
      const deleted = await db
        .delete(t.users)
        .where(and(eq(t.users.id, id), before.role === 'admin' && before.isActive ? anotherActiveAdmin(id) : undefined))
        .returning({ id: t.users.id })
      if (!deleted.length) throw lastActiveAdmin()
      await changed(id)
    },

    async count(): Promise<number> {
      const [row] = await db.select({ n: count() }).from(t.users)
      return Number(row?.n ?? 0)
    },
  }
}

export type UsersService = ReturnType<typeof createUsersService>
