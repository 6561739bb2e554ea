/** @module Users: creation and lookup. No HTTP types here. */
import { sql } from 'drizzle-orm'
import type { Database } from '../../db/index.ts'
import { violatedConstraint, isUniqueViolation } from '../../db/errors.ts'
import { conflict } from '../../lib/errors.ts'

export type Role = 'user' | 'admin'

export interface NewUser {
  username: string
  email: string
  password: string
  displayName?: string | null
  role?: Role
  emailVerified?: boolean
}

/** Argon2id with OWASP's recommended minimum (19 MiB, 2 passes): ~35 ms here, off the event loop. */
export const hashPassword = (password: string) => Bun.password.hash(password, { algorithm: 'argon2id', memoryCost: 19456, timeCost: 2 })

/** Create a user; a taken username or email is a 409 naming which. */
export async function createUser(database: Database, input: NewUser) {
  const { db, t } = database
  const passwordHash = await hashPassword(input.password)
  try {
    const [row] = await db
      .insert(t.users)
      .values({
        username: input.username,
        email: input.email.toLowerCase(),
        passwordHash,
        displayName: input.displayName ?? null,
        role: input.role ?? 'user',
        emailVerified: input.emailVerified ?? false,
      })
      .returning()
    return row!
  } catch (error) {
    if (isUniqueViolation(error)) {
      const which = violatedConstraint(error)?.includes('email') ? 'email' : 'username'
      throw conflict(`That ${which} is already taken`)
    }
    throw error
  }
}

export async function countUsers(database: Database): Promise<number> {
  const { db, t } = database
  const [row] = await db.select({ n: sql<number>`count(*)` }).from(t.users)
  return Number(row?.n ?? 0)
}
