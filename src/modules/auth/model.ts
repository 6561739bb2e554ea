/** @module Request and response schemas of accounts, sessions, codes and API keys (docs/api.md §4), and the mapping to and from them. */
import { z } from 'zod'
import { expiryTime, isoDate } from '../../lib/schemas.ts'
import { toUserDto, userSchema } from '../users/model.ts'
import type { UserRow } from '../users/service.ts'
import { API_KEY_SCOPES, type ApiKey } from './api-keys.ts'
import type { CodeSent } from './codes.ts'
import type { IssuedTokens, Session } from './service.ts'

const username = z.string().min(3).max(50).regex(/^[A-Za-z0-9_-]+$/, 'only letters, digits, _ and -')
const email = z.email().max(254)
const password = z.string().min(8).max(128)
const codeType = z.enum(['register', 'password_reset'])
const code = z.string().regex(/^\d{6}$/, '6 digits')
const displayName = z.string().trim().min(1).max(100).nullable()
const inviteCode = z.string().min(1).max(200)
/** the first admin's registration, while no admin exists (docs/api.md §4) */
const setupToken = z.string().min(1).max(200)

const tokensSchema = z
  .object({ access_token: z.string(), refresh_token: z.string(), token_type: z.literal('bearer'), expires_in: z.number().int() })
  .meta({ id: 'Tokens' })

export const authResult = z.object({ user: userSchema, tokens: tokensSchema })
export const refreshResult = z.object({ tokens: tokensSchema })

export const registerBody = z.object({ username, email, password, display_name: displayName.optional(), invite_code: inviteCode.optional(), setup_token: setupToken.optional() })
export const loginBody = z
  .object({ username: z.string().min(1).max(254).optional(), email: z.string().min(1).max(254).optional(), password: z.string().min(1).max(128) })
  .refine((b) => b.username !== undefined || b.email !== undefined, { message: 'username or email is required', path: ['username'] })
export const refreshBody = z.object({ refresh_token: z.string().min(1).max(200).optional() }).optional()
export const passwordBody = z.object({
  old_password: z.string().min(1).max(128).meta({ description: 'required unless the account has no password yet (made by single sign-on)' }).optional(),
  new_password: password,
})

export const sessionSchema = z.object({ id: z.string(), user_agent: z.string().nullable(), ip: z.string().nullable(), created_at: isoDate, last_used_at: isoDate, current: z.boolean() }).meta({ id: 'Session' })

export const sendCodeBody = z.object({ email, code_type: codeType })
export const sendCodeResult = z.object({ email: z.string(), code_type: codeType, cooldown_seconds: z.number().int(), remaining_daily_sends: z.number().int(), expire_minutes: z.number().int() })
export const verifyCodeBody = z.object({ email, code, code_type: codeType })
export const verifyCodeResult = z.object({ is_valid: z.literal(true) })
export const verifyRegisterBody = z.object({ username, email, password, code, display_name: displayName.optional(), invite_code: inviteCode.optional(), setup_token: setupToken.optional() })
export const passwordSendCodeBody = z.object({ email })
export const passwordResetBody = z.object({ email, code, new_password: password })

const apiKeyScopes = z.array(z.enum(API_KEY_SCOPES))
export const apiKeySchema = z
  .object({ id: z.string(), name: z.string(), prefix: z.string(), scopes: apiKeyScopes, created_at: isoDate, last_used_at: isoDate.nullable(), expires_at: isoDate.nullable() })
  .meta({ id: 'ApiKey' })
export const apiKeyCreateBody = z.object({
  name: z.string().trim().min(1).max(100),
  scopes: apiKeyScopes
    .min(1)
    .max(10)
    .meta({ description: '`gateway`: the OpenAI-compatible /v1; `api`: the native /api/v1, without credential management. Default: both' })
    .optional(),
  expires_at: expiryTime.nullable().optional(),
})
export const apiKeyCreated = apiKeySchema.extend({ key: z.string() })

/** register and verify-register bodies → the service's new account */
export function fromRegisterBody<B extends z.infer<typeof registerBody>>({ display_name, invite_code, setup_token, ...account }: B) {
  return { ...account, displayName: display_name, inviteCode: invite_code, setupToken: setup_token }
}

export const toTokensDto = (t: IssuedTokens) => ({ access_token: t.accessToken, refresh_token: t.refreshToken, token_type: 'bearer' as const, expires_in: t.expiresIn })
export const toAuthResultDto = (r: { user: UserRow; tokens: IssuedTokens }) => ({ user: toUserDto(r.user), tokens: toTokensDto(r.tokens) })

export const toSessionDto = (s: Session) => ({ id: s.id, user_agent: s.userAgent, ip: s.ip, created_at: s.createdAt.toISOString(), last_used_at: s.lastUsedAt.toISOString(), current: s.current })

export const toCodeSentDto = (c: CodeSent) => ({
  email: c.email,
  code_type: c.codeType,
  cooldown_seconds: c.cooldownSeconds,
  remaining_daily_sends: c.remainingDailySends,
  expire_minutes: c.expireMinutes,
})

export const toApiKeyDto = (k: ApiKey) => ({
  id: k.id,
  name: k.name,
  prefix: k.prefix,
  scopes: [...k.scopes],
  created_at: k.createdAt.toISOString(),
  last_used_at: k.lastUsedAt?.toISOString() ?? null,
  expires_at: k.expiresAt?.toISOString() ?? null,
})
export const toApiKeyCreatedDto = (k: ApiKey & { key: string }) => ({ ...toApiKeyDto(k), key: k.key })
export const fromApiKeyCreateBody = (b: z.infer<typeof apiKeyCreateBody>) => ({ name: b.name, scopes: b.scopes, expiresAt: b.expires_at ? new Date(b.expires_at) : null })
