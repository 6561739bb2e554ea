/** @module Users: creation, lookup, profile, preferences, credits and the admin's user management. No HTTP types here. */
import { and, asc, count, eq, or, sql, type SQL } from 'drizzle-orm'
import type { Database, Db } from '../../db/index.ts'
import { withLock } from '../../db/lock.ts'
import { isUniqueViolation, violatedConstraint } from '../../db/errors.ts'
import { AppError, conflict, notFound } from '../../lib/errors.ts'

export type Role = 'user' | 'admin'
export type UserRow = Database['t']['users']['$inferSelect']

export interface NewUser {
  username: string
  email: string
  password: string
  displayName?: string | null
  /** unset: `admin` when this is the first user ever, else `user` */
  role?: Role
  emailVerified?: boolean
}

/** Argon2id with OWASP's recommended minimum (19 MiB, 2 passes): ~35 ms here, off the event loop. */
export const hashPassword = (password: string) => Bun.password.hash(password, { algorithm: 'argon2id', memoryCost: 19456, timeCost: 2 })

/** The user object of API.md §3. */
export function toUser(u: UserRow) {
  return {
    id: u.id,
    username: u.username,
    email: u.email,
    display_name: u.displayName,
    avatar_url: u.avatarUrl,
    role: u.role,
    is_active: u.isActive,
    email_verified: u.emailVerified,
    created_at: u.createdAt.toISOString(),
  }
}
export type UserDto = ReturnType<typeof toUser>

export const PREFERENCE_DEFAULTS = {
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
 * Create a user; a taken username or email is a 409 naming which. With no role given, the first
 * user ever becomes admin: decided inside the insert, under a lock, so two simultaneous first
 * registrations cannot both become admin.
 */
export async function createUser(database: Database, input: NewUser): Promise<UserRow> {
  const { db, t } = database
  const passwordHash = await hashPassword(input.password)
  const role: Role | SQL = input.role ?? sql`(CASE WHEN EXISTS (SELECT 1 FROM ${t.users}) THEN 'user' ELSE 'admin' END)`
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
      const which = violatedConstraint(error)?.includes('email') ? 'email' : 'username'
      throw conflict(`That ${which} is already taken`)
    }
    throw error
  }
}

/** Where user changes are announced to every instance (the auth invalidation channel). */
export interface UserChangeBus {
  publish(...invalidations: ({ kind: 'user_changed'; id: string } | { kind: 'user'; id: string; after: number })[]): Promise<void>
  onInvalidate(listener: (inv: { kind: string; id?: string }) => void): void
}

/** How long a cached profile may be served at most, should a change notice ever be missed. */
const PROFILE_TTL_MS = 5_000

export function createUsersService(database: Database, bus?: UserChangeBus) {
  const { db, t } = database
  /** user id → the user object and preferences, for the hot reads (/auth/me, /users/me) */
  const profiles = new Map<string, { user: UserDto; preferences: Preferences; userJson: string; at: number }>()
  bus?.onInvalidate((inv) => {
    if ((inv.kind === 'user' || inv.kind === 'user_changed') && inv.id) profiles.delete(inv.id)
  })
  const changed = async (id: string) => {
    profiles.delete(id)
    await bus?.publish({ kind: 'user_changed', id })
  }
  // Lookups by a unique key carry no LIMIT: Drizzle binds it as a parameter, which makes bun:sqlite ~2.5× slower here.
  const byId = db.select().from(t.users).where(eq(t.users.id, sql.placeholder('id'))).prepare('users_by_id')

  async function get(id: string): Promise<UserRow> {
    const [row] = await byId.execute({ id })
    if (!row) throw notFound('User')
    return row
  }

  async function update(id: string, values: Partial<Database['t']['users']['$inferInsert']>): Promise<UserRow> {
    const [row] = await db
      .update(t.users)
      .set({ ...values, updatedAt: new Date() })
      .where(eq(t.users.id, id))
      .returning()
    if (!row) throw notFound('User')
    await changed(id)
    return row
  }

  return {
    get,

    /**
     * The user object and preferences, served from memory: writes here drop the entry on every
     * instance at once; the TTL bounds staleness should a notice be missed.
     */
    async profile(id: string) {
      const now = Date.now()
      const hit = profiles.get(id)
      if (hit && now - hit.at < PROFILE_TTL_MS) return hit
      const row = await get(id)
      const user = toUser(row)
      const entry = { user, preferences: preferencesOf(row), userJson: JSON.stringify(user), at: now }
      if (profiles.size >= 50_000) profiles.clear()
      profiles.set(id, entry)
      return entry
    },

    /** undefined when there is no such user (hot path: prepared) */
    async find(id: string): Promise<UserRow | undefined> {
      const [row] = await byId.execute({ id })
      return row
    },

    updateProfile: (id: string, patch: { displayName?: string | null; avatarUrl?: string | null }) => update(id, patch),

    async setPreferences(id: string, patch: Partial<Preferences>): Promise<Preferences> {
      const current = preferencesOf(await get(id))
      const next = { ...current, ...patch }
      await update(id, { preferences: next })
      return next
    },

    async list(filter: { q?: string; role?: Role; isActive?: boolean; limit: number; offset: number }) {
      const conditions: SQL[] = []
      if (filter.q) {
        const like = `%${filter.q.toLowerCase().replace(/[\\%_]/g, (c) => '\\' + c)}%`
        conditions.push(or(sql`lower(${t.users.username}) LIKE ${like} ESCAPE '\\'`, sql`${t.users.email} LIKE ${like} ESCAPE '\\'`, sql`lower(coalesce(${t.users.displayName}, '')) LIKE ${like} ESCAPE '\\'`)!)
      }
      if (filter.role) conditions.push(eq(t.users.role, filter.role))
      if (filter.isActive !== undefined) conditions.push(eq(t.users.isActive, filter.isActive))
      const where = conditions.length ? and(...conditions) : undefined
      const [rows, [total]] = await Promise.all([
        db.select().from(t.users).where(where).orderBy(asc(t.users.createdAt), asc(t.users.id)).limit(filter.limit).offset(filter.offset),
        db.select({ n: count() }).from(t.users).where(where),
      ])
      return { rows, total: Number(total?.n ?? 0) }
    },

    /**
     * An admin's change to a user. Demoting, disabling or deleting the last active admin is refused
     * (checked inside the same statement, so it holds under concurrent requests on SQLite).
     */
    async adminUpdate(id: string, patch: { role?: Role; isActive?: boolean; creditsDelta?: number }): Promise<{ user: UserRow; roleChanged: boolean; disabled: boolean }> {
      const before = await get(id)
      const losesAdmin = before.role === 'admin' && before.isActive && (patch.role === 'user' || patch.isActive === false)
      const values: Record<string, unknown> = { updatedAt: new Date() }
      if (patch.role !== undefined) values.role = patch.role
      if (patch.isActive !== undefined) values.isActive = patch.isActive
      if (patch.creditsDelta) values.creditBalance = sql`${t.users.creditBalance} + ${patch.creditsDelta}`
      const roleChanged = patch.role !== undefined && patch.role !== before.role
      const disabled = patch.isActive === false && before.isActive
      if (roleChanged || disabled) values.tokensValidAfter = new Date()
      const guard = losesAdmin ? sql`(SELECT count(*) FROM ${t.users} WHERE ${t.users.role} = 'admin' AND ${t.users.isActive} = ${true} AND ${t.users.id} <> ${id}) > 0` : undefined
      const [row] = await db.update(t.users).set(values).where(and(eq(t.users.id, id), guard)).returning()
      if (!row) throw lastAdmin()
      await changed(id)
      return { user: row, roleChanged, disabled }
    },

    async remove(id: string): Promise<void> {
      const before = await get(id)
      const guard = before.role === 'admin' && before.isActive ? sql`(SELECT count(*) FROM ${t.users} WHERE ${t.users.role} = 'admin' AND ${t.users.isActive} = ${true} AND ${t.users.id} <> ${id}) > 0` : undefined
      const deleted = await db.delete(t.users).where(and(eq(t.users.id, id), guard)).returning({ id: t.users.id })
      if (!deleted.length) throw lastAdmin()
      await changed(id)
    },

    async count(): Promise<number> {
      const [row] = await db.select({ n: count() }).from(t.users)
      return Number(row?.n ?? 0)
    },
  }
}

const lastAdmin = () => new AppError(409, 'CONFLICT', 'This is the last active admin: make another user admin first')

export type UsersService = ReturnType<typeof createUsersService>
