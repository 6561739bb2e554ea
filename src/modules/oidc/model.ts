/** @module The single sign-on wire: providers (admin and public), linked identities, the start and callback queries. */
import { z } from 'zod'
import { isoDate } from '../../lib/schemas.ts'
import type { OidcProvider, ProviderInput } from './registry.ts'
import type { Identity } from './service.ts'


const slug = z.string().regex(/^[a-z0-9-]{1,32}$/, '1 to 32 of a-z, 0-9 and -')
const name = z.string().trim().min(1).max(100)
const issuer = z
  .url({ protocol: /^https?$/ })
  .max(500)
  .meta({ description: 'the issuer URL; `<issuer>/.well-known/openid-configuration` is read at the first sign-in' })
const clientId = z.string().min(1).max(500)
const clientSecret = z.string().min(1).max(2000).meta({ description: 'write-only: stored encrypted, never returned (`has_client_secret`); `null` or left out: a public client (PKCE only)' })
const scopes = z
  .string()
  .trim()
  .max(500)
  .regex(/^[\x21-\x7e]+( [\x21-\x7e]+)*$/, 'scope names separated by single spaces')
  .refine((s) => s.split(' ').includes('openid'), 'must include openid')
  .meta({ description: 'space-separated, including `openid`; default `openid email profile`' })

export const providerCreateBody = z.object({ id: slug, name, issuer, client_id: clientId, client_secret: clientSecret.nullable().optional(), scopes: scopes.optional() })
export const providerPatchBody = z.object({ name: name.optional(), issuer: issuer.optional(), client_id: clientId.optional(), client_secret: clientSecret.nullable().optional(), scopes: scopes.optional() })

export const providerSchema = z
  .object({
    id: z.string(),
    name: z.string(),
    issuer: z.string(),
    client_id: z.string(),
    has_client_secret: z.boolean(),
    scopes: z.string(),
    source: z.enum(['env', 'admin']).meta({ description: '`env`: from HEARTH_OIDC_<ID>_* (read-only here); `admin`: added over the API' }),
    callback_url: z.string().meta({ description: 'the redirect URI to register at the provider' }),
    created_at: isoDate.nullable(),
    updated_at: isoDate.nullable(),
  })
  .meta({ id: 'OidcProvider' })

export const publicProviderSchema = z.object({ id: z.string(), name: z.string() }).meta({ id: 'OidcProviderSummary' })

export const identitySchema = z
  .object({
    id: z.string(),
    provider_id: z.string(),
    provider_name: z.string().nullable().meta({ description: 'null when the provider has been removed' }),
    email: z.string().nullable(),
    created_at: isoDate,
    last_used_at: isoDate.nullable(),
  })
  .meta({ id: 'LinkedIdentity' })

export const startQuery = z.object({
  redirect: z.string().max(2000).optional().meta({ description: 'where to go once signed in: a path on this site (default `/`) or a URL on an origin of HEARTH_CORS_ORIGINS' }),
})
export const linkBody = z.object({ redirect: z.string().max(2000).optional() }).optional()
export const linkResult = z.object({ url: z.string().meta({ description: "the provider's authorization URL: navigate the browser to it" }) })

export const callbackQuery = z.object({
  code: z.string().min(1).max(4096).optional(),
  state: z.string().min(1).max(512),
  iss: z.string().max(500).optional(),
  error: z.string().max(200).optional(),
  error_description: z.string().max(2000).optional(),
  session_state: z.string().max(500).optional(),
})

export const redirectAnswer = (description: string) => z.void().meta({ description })

export const toProviderDto = (p: OidcProvider, callbackBase: string): z.infer<typeof providerSchema> => ({
  id: p.id,
  name: p.name,
  issuer: p.issuer,
  client_id: p.clientId,
  has_client_secret: p.clientSecret !== undefined,
  scopes: p.scopes,
  source: p.source,
  callback_url: `${callbackBase}/api/v1/auth/oidc/${p.id}/callback`,
  created_at: p.createdAt?.toISOString() ?? null,
  updated_at: p.updatedAt?.toISOString() ?? null,
})

export const fromProviderCreateBody = (b: z.infer<typeof providerCreateBody>): ProviderInput => ({ id: b.id, name: b.name, issuer: b.issuer, clientId: b.client_id, clientSecret: b.client_secret, scopes: b.scopes })
export const fromProviderPatchBody = (b: z.infer<typeof providerPatchBody>) => ({ name: b.name, issuer: b.issuer, clientId: b.client_id, clientSecret: b.client_secret, scopes: b.scopes })

export const toIdentityDto = (i: Identity): z.infer<typeof identitySchema> => ({
  id: i.id,
  provider_id: i.providerId,
  provider_name: i.providerName,
  email: i.email,
  created_at: i.createdAt.toISOString(),
  last_used_at: i.lastUsedAt?.toISOString() ?? null,
})
