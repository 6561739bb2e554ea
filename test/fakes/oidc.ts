/**
 * A fake OpenID Connect provider on loopback (Bun.serve) speaking the real protocol: discovery,
 * JWKS (an RS256 key made with jose), `/authorize` (no login page: it redirects at once to the
 * redirect_uri with a code, for the claims the test set with `nextLogin`), `/token` (checks the
 * code, the client's secret, the PKCE verifier and the redirect_uri, and issues a signed ID token)
 * and `/userinfo`. Knobs make it misbehave the ways a provider can: a wrong audience, a signature by
 * another key, an expired token, a 1 MB ID token, HTML instead of JSON, or holding an answer until
 * the test releases it (slow).
 */
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey } from 'jose'

export interface FakeClaims {
  sub: string
  email?: string
  email_verified?: boolean
  name?: string
  preferred_username?: string
  [claim: string]: unknown
}

export interface FakeOidcKnobs {
  /** the ID token's `aud` (default the client id) */
  audience?: string
  /** sign with a key that is not in the JWKS (same `kid`) */
  otherKey?: boolean
  /** `exp` an hour ago */
  expired?: boolean
  /** pad the ID token to about 1 MB */
  huge?: boolean
  /** answer this endpoint with an HTML page (200, text/html) */
  html?: 'discovery' | 'token'
  /** hold this endpoint's answer until `release()` */
  slow?: 'discovery' | 'token'
  /** leave `email` and `email_verified` out of the ID token (they stay in userinfo) */
  emailOnlyInUserinfo?: boolean
  /** `/authorize` answers the redirect_uri with this `error` instead of a code */
  authorizeError?: string
}

export interface FakeAuthorization {
  code: string | null
  state: string | null
  /** the callback URL the provider sent the browser to, with its query */
  location: string
}

interface IssuedCode {
  claims: FakeClaims
  clientId: string
  redirectUri: string
  nonce: string | undefined
  challenge: string
}

export interface FakeOidc {
  issuer: string
  clientId: string
  clientSecret: string
  knobs: FakeOidcKnobs
  /** the claims of the next `/authorize` */
  nextLogin(claims: FakeClaims): void
  /** play the browser at the provider: open the authorization URL, return where it redirects */
  authorize(url: string): Promise<FakeAuthorization>
  /** let held (slow) answers go */
  release(): void
  /** token requests seen, in order (the form fields) */
  tokenRequests: Record<string, string>[]
  stop(): Promise<void>
}

const b64url = (bytes: ArrayBuffer) => Buffer.from(bytes).toString('base64url')
const s256 = async (verifier: string) => b64url(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(verifier)))

export async function startFakeOidc(opts: { clientId?: string; clientSecret?: string } = {}): Promise<FakeOidc> {
  const clientId = opts.clientId ?? 'hearth-test'
  const clientSecret = opts.clientSecret ?? 'fake-client-secret'
  const { publicKey, privateKey } = await generateKeyPair('RS256')
  const other = await generateKeyPair('RS256')
  const jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'RS256', use: 'sig' }
  const codes = new Map<string, IssuedCode>()
  const tokens = new Map<string, FakeClaims>()
  let next: FakeClaims = { sub: 'default-subject', email: 'someone@example.com', email_verified: true }
  let held: { promise: Promise<void>; resolve: () => void } = Promise.withResolvers<void>()
  const tokenRequests: Record<string, string>[] = []
  const knobs: FakeOidcKnobs = {}
  const html = () => new Response('<!doctype html><html><body>Sign in to continue</body></html>', { headers: { 'content-type': 'text/html' } })
  const tokenError = (error: string, status = 400) => Response.json({ error }, { status })

  async function idToken(c: IssuedCode): Promise<string> {
    const now = Math.floor(Date.now() / 1000)
    const { sub, ...rest } = c.claims
    const claims: Record<string, unknown> = { ...rest }
    if (knobs.emailOnlyInUserinfo) delete claims.email, delete claims.email_verified
    if (c.nonce !== undefined) claims.nonce = c.nonce
    if (knobs.huge) claims.padding = 'x'.repeat(1_000_000)
    return new SignJWT(claims)
      .setProtectedHeader({ alg: 'RS256', kid: 'k1' })
      .setIssuer(issuer)
      .setSubject(sub)
      .setAudience(knobs.audience ?? c.clientId)
      .setIssuedAt(knobs.expired ? now - 7200 : now)
      .setExpirationTime(knobs.expired ? now - 3600 : now + 300)
      .sign((knobs.otherKey ? other.privateKey : privateKey) as CryptoKey)
  }

  const server = Bun.serve({
    hostname: '127.0.0.1',
    port: 0,
    async fetch(req): Promise<Response> {
      const url = new URL(req.url)
      switch (url.pathname) {
        case '/.well-known/openid-configuration':
          if (knobs.slow === 'discovery') await held.promise
          if (knobs.html === 'discovery') return html()
          return Response.json({
            issuer,
            authorization_endpoint: `${issuer}/authorize`,
            token_endpoint: `${issuer}/token`,
            userinfo_endpoint: `${issuer}/userinfo`,
            jwks_uri: `${issuer}/jwks`,
            response_types_supported: ['code'],
            subject_types_supported: ['public'],
            id_token_signing_alg_values_supported: ['RS256'],
            code_challenge_methods_supported: ['S256'],
            token_endpoint_auth_methods_supported: ['client_secret_post', 'client_secret_basic'],
          })
        case '/jwks':
          return Response.json({ keys: [jwk] })
        case '/authorize': {
          const q = url.searchParams
          const redirectUri = q.get('redirect_uri')
          if (q.get('client_id') !== clientId || !redirectUri) return new Response('unknown client', { status: 400 })
          const back = new URL(redirectUri)
          const state = q.get('state')
          if (state !== null) back.searchParams.set('state', state)
          if (knobs.authorizeError) {
            back.searchParams.set('error', knobs.authorizeError)
            return new Response(null, { status: 302, headers: { location: back.href } })
          }
          if (q.get('response_type') !== 'code' || q.get('code_challenge_method') !== 'S256' || !q.get('code_challenge') || !q.get('scope')?.split(' ').includes('openid'))
            return new Response('bad authorization request', { status: 400 })
          const code = crypto.randomUUID()
          codes.set(code, { claims: next, clientId, redirectUri, nonce: q.get('nonce') ?? undefined, challenge: q.get('code_challenge')! })
          back.searchParams.set('code', code)
          return new Response(null, { status: 302, headers: { location: back.href } })
        }
        case '/token': {
          if (req.method !== 'POST') return new Response(null, { status: 405 })
          const form = Object.fromEntries(new URLSearchParams(await req.text()))
          tokenRequests.push(form)
          if (knobs.slow === 'token') await held.promise
          if (knobs.html === 'token') return html()
          let id = form.client_id
          let secret = form.client_secret
          const basic = req.headers.get('authorization')
          if (basic?.startsWith('Basic ')) [id, secret] = Buffer.from(basic.slice(6), 'base64').toString().split(':').map(decodeURIComponent) as [string, string]
          if (id !== clientId || secret !== clientSecret) return tokenError('invalid_client', 401)
          if (form.grant_type !== 'authorization_code') return tokenError('unsupported_grant_type')
          const issued = codes.get(form.code ?? '')
          codes.delete(form.code ?? '') // single use, as the spec says
          if (!issued || issued.redirectUri !== form.redirect_uri || !form.code_verifier || (await s256(form.code_verifier)) !== issued.challenge) return tokenError('invalid_grant')
          const accessToken = crypto.randomUUID()
          tokens.set(accessToken, issued.claims)
          return Response.json({ access_token: accessToken, token_type: 'Bearer', expires_in: 300, id_token: await idToken(issued) }, { headers: { 'cache-control': 'no-store' } })
        }
        case '/userinfo': {
          const claims = tokens.get(req.headers.get('authorization')?.replace(/^Bearer /, '') ?? '')
          return claims ? Response.json(claims) : new Response(null, { status: 401, headers: { 'www-authenticate': 'Bearer error="invalid_token"' } })
        }
      }
      return new Response('not found', { status: 404 })
    },
  })
  const issuer: string = `http://127.0.0.1:${server.port}`

  return {
    issuer,
    clientId,
    clientSecret,
    knobs,
    tokenRequests,
    nextLogin(claims) {
      next = claims
    },
    async authorize(authorizationUrl) {
      const res = await fetch(authorizationUrl, { redirect: 'manual' })
      const location = res.headers.get('location')
      if (res.status !== 302 || !location) throw new Error(`the fake provider refused the authorization request: ${res.status} ${await res.text()}`)
      const back = new URL(location)
      return { code: back.searchParams.get('code'), state: back.searchParams.get('state'), location }
    },
    release() {
      held.resolve()
      held = Promise.withResolvers<void>()
    },
    async stop() {
      held.resolve()
      await server.stop(true)
    },
  }
}
