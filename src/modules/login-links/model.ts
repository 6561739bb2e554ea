/** @module The login links wire: the LoginLink object, the issue body and list query, and the row → LoginLink mapping. */
import { z } from 'zod'
import { isoDate, listQuery, withDefault } from '../../lib/schemas.ts'
import { LOGIN_LINK_TTL, statusOf, type LoginLinkRow } from './service.ts'

export const loginLinkSchema = z
  .object({
    id: z.string(),
    user_id: z.string(),
    created_by: z.string().nullable().meta({ description: 'the admin who made it; null: the command line, or that admin is gone' }),
    single_use: z.boolean(),
    status: z.enum(['active', 'used', 'expired', 'revoked']).meta({ description: '`active`: opening it signs the user in' }),
    expires_at: isoDate.nullable().meta({ description: 'null: until revoked' }),
    used_at: isoDate.nullable().meta({ description: 'when it was opened; for a link that is not single use, the last time' }),
    revoked_at: isoDate.nullable(),
    created_at: isoDate,
  })
  .meta({ id: 'LoginLink' })

export const loginLinkCreated = loginLinkSchema.extend({ url: z.string().meta({ description: 'the link to hand out; shown only here' }) })

export const loginLinkCreateBody = z
  .object({
    user_id: z.string().min(1).max(64),
    ttl_s: withDefault(
      z.number().int().min(LOGIN_LINK_TTL.min).max(LOGIN_LINK_TTL.max).nullable().meta({ description: `seconds until it expires, ${LOGIN_LINK_TTL.min} to ${LOGIN_LINK_TTL.max} (30 days); null: never (only with \`single_use: false\`)` }),
      LOGIN_LINK_TTL.default,
    ),
    single_use: withDefault(z.boolean().meta({ description: 'false: it can be opened again and again until it expires or is revoked' }), true),
  })
  .refine((b) => b.ttl_s !== null || !b.single_use, { message: 'a single-use link must expire: null needs single_use: false', path: ['ttl_s'] })

export const loginLinkListQuery = listQuery.extend({ user_id: z.string().min(1).max(64).optional() })

export const openQuery = z.object({ token: z.string().min(1).max(200) })

export const fromLoginLinkCreateBody = (b: z.infer<typeof loginLinkCreateBody>) => ({ userId: b.user_id, ttlSeconds: b.ttl_s, singleUse: b.single_use })

export const toLoginLinkDto = (l: LoginLinkRow): z.infer<typeof loginLinkSchema> => ({
  id: l.id,
  user_id: l.userId,
  created_by: l.createdBy,
  single_use: l.singleUse,
  status: statusOf(l),
  expires_at: l.expiresAt?.toISOString() ?? null,
  used_at: l.usedAt?.toISOString() ?? null,
  revoked_at: l.revokedAt?.toISOString() ?? null,
  created_at: l.createdAt.toISOString(),
})
