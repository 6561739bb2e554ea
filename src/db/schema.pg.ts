/** @module Postgres schema. Must stay identical to schema.sqlite.ts (test/db/schema-parity.test.ts). */
import { sql } from 'drizzle-orm'
import { boolean, index, pgTable, text, timestamp, uniqueIndex } from 'drizzle-orm/pg-core'
import { newId } from '../lib/ids.ts'

const id = () => text('id').primaryKey().$defaultFn(newId)
const createdAt = () => timestamp('created_at', { withTimezone: true, mode: 'date' }).notNull().$defaultFn(() => new Date())
const updatedAt = () => timestamp('updated_at', { withTimezone: true, mode: 'date' }).notNull().$defaultFn(() => new Date())

export const users = pgTable(
  'users',
  {
    id: id(),
    username: text('username').notNull(),
    email: text('email').notNull(),
    passwordHash: text('password_hash').notNull(),
    displayName: text('display_name'),
    avatarUrl: text('avatar_url'),
    role: text('role', { enum: ['user', 'admin'] }).notNull().default('user'),
    isActive: boolean('is_active').notNull().default(true),
    emailVerified: boolean('email_verified').notNull().default(false),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [
    uniqueIndex('users_username_lower_uq').on(sql`lower(${t.username})`),
    uniqueIndex('users_email_uq').on(t.email),
    index('users_created_at_idx').on(t.createdAt),
  ],
)
