/**
 * @module Access tokens: short-lived HS256 JWTs (`sub`, `sid`, `role`, `exp`, `iat`, and `ims`, the
 * issue time in ms used for cut-offs). Verified tokens are cached until they expire, so a request
 * with a known token costs a Map lookup instead of an HMAC.
 */
import { errors, jwtVerify, SignJWT } from 'jose'
import type { Role } from '../users/service.ts'
import { badToken, tokenExpired } from './errors.ts'

export interface AccessClaims {
  sub: string
  sid: string
  role: Role
  /** expiry, seconds since the epoch */
  exp: number
  /** issued at, ms since the epoch */
  ims: number
}

const CACHE_LIMIT = 50_000

export function createAccessTokens(key: Uint8Array, ttlSeconds: number) {
  const cache = new Map<string, AccessClaims>()

  return {
    ttlSeconds,
    async sign(claims: { sub: string; sid: string; role: Role }): Promise<string> {
      const now = Date.now()
      return new SignJWT({ sid: claims.sid, role: claims.role, ims: now })
        .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
        .setSubject(claims.sub)
        .setIssuedAt(Math.floor(now / 1000))
        .setExpirationTime(Math.floor(now / 1000) + ttlSeconds)
        .setIssuer('hearth')
        .sign(key)
    },

    /** The claims of a valid token; throws TOKEN_EXPIRED or UNAUTHORIZED. */
    async verify(token: string): Promise<AccessClaims> {
      const cached = cache.get(token)
      if (cached) {
        if (cached.exp * 1000 <= Date.now()) {
          cache.delete(token)
          throw tokenExpired()
        }
        return cached
      }
      let payload
      try {
        ;({ payload } = await jwtVerify(token, key, { algorithms: ['HS256'], issuer: 'hearth' }))
      } catch (error) {
        if (error instanceof errors.JWTExpired) throw tokenExpired()
        throw badToken()
      }
      const { sub, sid, role, exp, ims } = payload as Partial<AccessClaims>
      if (typeof sub !== 'string' || typeof sid !== 'string' || (role !== 'user' && role !== 'admin') || typeof exp !== 'number' || typeof ims !== 'number') throw badToken()
      const claims: AccessClaims = { sub, sid, role, exp, ims }
      if (cache.size >= CACHE_LIMIT) cache.delete(cache.keys().next().value!)
      cache.set(token, claims)
      return claims
    },
  }
}

export type AccessTokens = ReturnType<typeof createAccessTokens>
