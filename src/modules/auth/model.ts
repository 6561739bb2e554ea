/** @module Request and response schemas of accounts and users: validation, OpenAPI and Eden types at once. */
import { z } from 'zod'
import { isoDate } from '../../lib/schemas.ts'

export const username = z.string().min(3).max(50).regex(/^[A-Za-z0-9_-]+$/, 'only letters, digits, _ and -')
export const email = z.email().max(254)
export const password = z.string().min(8).max(128)
export const codeType = z.enum(['register', 'password_reset'])
export const code = z.string().regex(/^\d{6}$/, '6 digits')
const displayName = z.string().trim().min(1).max(100).nullable()

export const userSchema = z
  .object({
    id: z.string(),
    username: z.string(),
    email: z.string(),
    display_name: z.string().nullable(),
    avatar_url: z.string().nullable(),
    role: z.enum(['user', 'admin']),
    is_active: z.boolean(),
    email_verified: z.boolean(),
    created_at: isoDate,
  })
  .meta({ id: 'User' })

export const tokensSchema = z
  .object({ access_token: z.string(), refresh_token: z.string(), token_type: z.literal('bearer'), expires_in: z.number().int() })
  .meta({ id: 'Tokens' })

export const authResult = z.object({ user: userSchema, tokens: tokensSchema })

export const registerBody = z.object({ username, email, password, display_name: displayName.optional(), invite_code: z.string().min(1).max(200).optional() })
export const loginBody = z
  .object({ username: z.string().min(1).max(254).optional(), email: z.string().min(1).max(254).optional(), password: z.string().min(1).max(128) })
  .refine((b) => b.username !== undefined || b.email !== undefined, { message: 'username or email is required', path: ['username'] })
export const refreshBody = z.object({ refresh_token: z.string().min(1).max(200).optional() }).optional()
export const passwordBody = z.object({ old_password: z.string().min(1).max(128), new_password: password })

export const sessionSchema = z.object({ id: z.string(), user_agent: z.string().nullable(), ip: z.string().nullable(), created_at: isoDate, last_used_at: isoDate, current: z.boolean() }).meta({ id: 'Session' })

export const sendCodeBody = z.object({ email, code_type: codeType })
export const sendCodeResult = z.object({ email: z.string(), code_type: codeType, cooldown_seconds: z.number().int(), remaining_daily_sends: z.number().int(), expire_minutes: z.number().int() })
export const verifyCodeBody = z.object({ email, code, code_type: codeType })
export const verifyRegisterBody = z.object({ username, email, password, code, display_name: displayName.optional(), invite_code: z.string().min(1).max(200).optional() })
export const passwordSendCodeBody = z.object({ email })
export const passwordResetBody = z.object({ email, code, new_password: password })

export const apiKeySchema = z.object({ id: z.string(), name: z.string(), prefix: z.string(), created_at: isoDate, last_used_at: isoDate.nullable(), expires_at: isoDate.nullable() }).meta({ id: 'ApiKey' })
export const apiKeyCreateBody = z.object({ name: z.string().trim().min(1).max(100), expires_at: z.iso.datetime({ offset: true }).nullable().optional() })
export const apiKeyCreated = apiKeySchema.extend({ key: z.string() })

export const idParams = z.object({ id: z.string().min(1).max(64) })
