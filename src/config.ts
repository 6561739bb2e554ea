/** @module Settings from the environment, parsed once into a typed Config. */
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'

export type RegistrationMode = 'open' | 'verify' | 'invite' | 'closed'
export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'silent'

export interface RateLimit {
  /** requests allowed per window */
  limit: number
  windowMs: number
}

export interface Config {
  port: number
  host: string
  dataDir: string
  /** `postgres://…` or undefined for SQLite in the data dir */
  databaseUrl: string | undefined
  /** unset → generated into the data dir by {@link resolveSecret} */
  secret: string | undefined
  registration: RegistrationMode
  smtpUrl: string | undefined
  corsOrigins: string[]
  rateLimit: RateLimit
  /** per client IP on login, registration and code endpoints */
  authRateLimit: RateLimit
  /** take the client IP from X-Forwarded-For (only behind a proxy you run) */
  trustProxy: boolean
  /** refuse model calls when a user's credit balance is used up */
  creditsEnforced: boolean
  /** let non-admin users point personal providers at loopback and private addresses */
  allowPrivateUpstreams: boolean
  /** event streams one user may hold open at once, per instance */
  maxStreamsPerUser: number
  /** answers one user may have generating at once, counted across instances */
  maxRunsPerUser: number
  /** the largest file one upload may carry (HEARTH_UPLOAD_MAX_BYTES) */
  uploadMaxBytes: number
  /** one user's files, unless an admin set theirs (HEARTH_STORAGE_QUOTA_BYTES) */
  storageQuotaBytes: number
  /** background tasks this instance runs at once (HEARTH_TASK_CONCURRENCY) */
  taskConcurrency: number
  /** background tasks one user may have running at once, across instances (HEARTH_TASK_USER_CONCURRENCY) */
  taskUserConcurrency: number
  /** how long a worker's hold on a task lasts unless renewed (HEARTH_TASK_LEASE_MS); a dead instance's tasks are claimed again after it */
  taskLeaseMs: number
  /** the first retry's delay after an upstream failure, doubled per attempt (HEARTH_TASK_RETRY_MS) */
  taskRetryMs: number
  /** how long one request to a workflow service (or opening its WebSocket) may take (HEARTH_WORKFLOW_REQUEST_TIMEOUT_MS) */
  workflowRequestTimeoutMs: number
  /** how long a workflow run may take from its start before it is stopped (HEARTH_WORKFLOW_RUN_TIMEOUT_MS) */
  workflowRunTimeoutMs: number
  logLevel: LogLevel
  /** where file bytes go when not the data dir's `files/` (`HEARTH_S3_URL`) */
  s3: S3Settings | undefined
  /** how long a query over a data connection may run before it is cancelled on the database (HEARTH_SQL_TIMEOUT_MS) */
  sqlTimeoutMs: number
  /** the most rows a query over a data connection returns (HEARTH_SQL_MAX_ROWS) */
  sqlMaxRows: number
  /** the server's own address as browsers reach it (HEARTH_PUBLIC_URL, no trailing slash): login links and single sign-on callbacks; unset: taken from each request (the CLI: http://localhost:PORT) */
  publicUrl: string | undefined
  /** single sign-on providers from HEARTH_OIDC_<ID>_ISSUER, _CLIENT_ID, _CLIENT_SECRET, _NAME, _SCOPES */
  oidcProviders: OidcProviderSettings[]
}

/** One OpenID Connect provider from the environment. */
export interface OidcProviderSettings {
  /** `<ID>` lower-cased, `_` as `-` (HEARTH_OIDC_MY_IDP_ISSUER → `my-idp`) */
  id: string
  name: string
  issuer: string
  clientId: string
  /** unset: a public client (PKCE only) */
  clientSecret: string | undefined
  scopes: string
}

/** An S3-compatible store and the key pair for it, from `HEARTH_S3_URL`. */
export interface S3Settings {
  /** `http(s)://host[:port]`; with virtual-hosted style, the bucket's own host (`https://bucket.host`) */
  endpoint: string
  bucket: string
  region: string
  accessKeyId: string
  secretAccessKey: string
  /** the bucket in the host name (AWS's style) rather than in the path (MinIO's and most self-hosted stores') */
  virtualHostedStyle: boolean
}

/** A setting that cannot be used; its message is one line naming the variable. */
export class ConfigError extends Error {
  override name = 'ConfigError'
}

const WINDOWS: Record<string, number> = { s: 1_000, sec: 1_000, second: 1_000, m: 60_000, min: 60_000, minute: 60_000, h: 3_600_000, hour: 3_600_000 }

function parseRateLimit(raw: string): RateLimit | undefined {
  const m = /^(\d{1,7})\/(s|sec|second|m|min|minute|h|hour)$/.exec(raw.trim())
  if (!m) return undefined
  const limit = Number(m[1])
  return limit > 0 ? { limit, windowMs: WINDOWS[m[2]!]! } : undefined
}

/** A whole number from 1 to `max`, or the fallback when unset. */
function wholeNumber(name: string, raw: string | undefined, fallback: number, max = 100_000): number {
  if (raw === undefined || raw === '') return fallback
  const n = Number(raw)
  if (!/^\d{1,7}$/.test(raw) || n < 1 || n > max) throw new ConfigError(`${name}=${JSON.stringify(raw)} is not a whole number from 1 to ${max}`)
  return n
}

const BYTE_UNITS: Record<string, number> = { '': 1, b: 1, k: 1024, kb: 1024, kib: 1024, m: 1024 ** 2, mb: 1024 ** 2, mib: 1024 ** 2, g: 1024 ** 3, gb: 1024 ** 3, gib: 1024 ** 3, t: 1024 ** 4, tb: 1024 ** 4, tib: 1024 ** 4 }

/** A size in bytes: `26214400`, or a whole number with a binary unit (`25MiB`, `1 GiB`; K, M, G, T and KB… mean the same). */
function byteSize(name: string, raw: string | undefined, fallback: number): number {
  if (raw === undefined || raw === '') return fallback
  const m = /^(\d{1,16})\s*([a-z]*)$/i.exec(raw.trim())
  const unit = m ? BYTE_UNITS[m[2]!.toLowerCase()] : undefined
  const n = m && unit ? Number(m[1]) * unit : NaN
  if (!(n >= 1 && n <= Number.MAX_SAFE_INTEGER)) throw new ConfigError(`${name}=${JSON.stringify(raw)} is not a size in bytes such as 26214400 or 25MiB`)
  return n
}

function oneOf<T extends string>(name: string, raw: string | undefined, allowed: readonly T[], fallback: T): T {
  if (raw === undefined || raw === '') return fallback
  if ((allowed as readonly string[]).includes(raw)) return raw as T
  throw new ConfigError(`${name}=${JSON.stringify(raw)} is not one of ${allowed.join(', ')}`)
}

const S3_FORMAT = 's3://KEY:SECRET@host:port/bucket?region=us-east-1&path_style=true (s3+https:// for TLS; percent-encode @ : / in the key and secret)'
const S3_SCHEMES: Record<string, 'http' | 'https'> = { 's3:': 'http', 's3+http:': 'http', 's3+https:': 'https' }
const BUCKET = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/

/** `HEARTH_S3_URL`, checked whole. Messages never repeat the value: it holds the secret. */
function parseS3Url(raw: string): S3Settings {
  const bad = (why: string) => new ConfigError(`HEARTH_S3_URL ${why}; expected ${S3_FORMAT}`)
  let url: URL
  try {
    url = new URL(raw)
  } catch {
    throw bad('is not a URL')
  }
  const scheme = S3_SCHEMES[url.protocol]
  if (!scheme) throw bad('must start with s3://, s3+http:// or s3+https://')
  if (!url.hostname) throw bad('has no host')
  let accessKeyId: string, secretAccessKey: string
  try {
    accessKeyId = decodeURIComponent(url.username)
    secretAccessKey = decodeURIComponent(url.password)
  } catch {
    throw bad('has a key or secret that is not valid percent-encoding')
  }
  if (!accessKeyId || !secretAccessKey) throw bad('needs KEY:SECRET@ before the host')
  const bucket = /^\/([^/]+)\/?$/.exec(url.pathname)?.[1]
  if (!bucket) throw bad('must name one bucket after the host')
  if (!BUCKET.test(bucket)) throw bad(`has bucket ${JSON.stringify(bucket)}, which is not a bucket name (3-63 of a-z 0-9 . -)`)

  let region = 'us-east-1'
  let pathStyle = true
  for (const [name, value] of url.searchParams) {
    if (name === 'region') {
      if (!/^[a-z0-9-]{1,32}$/.test(value)) throw bad(`has region ${JSON.stringify(value)}, which is not like us-east-1`)
      region = value
    } else if (name === 'path_style') {
      if (value !== 'true' && value !== 'false') throw bad(`has path_style ${JSON.stringify(value)}, which is not true or false`)
      pathStyle = value === 'true'
    } else {
      throw bad(`has ${JSON.stringify(name)}, which is not region or path_style`)
    }
  }
  const host = url.port ? `${url.hostname}:${url.port}` : url.hostname
  return {
    endpoint: pathStyle ? `${scheme}://${host}` : `${scheme}://${bucket}.${host}`,
    bucket,
    region,
    accessKeyId,
    secretAccessKey,
    virtualHostedStyle: !pathStyle,
  }
}

/** Parse the environment. Throws ConfigError naming the first bad variable. */
export function parseConfig(env: Record<string, string | undefined>): Config {
  const portRaw = env.PORT || '8787'
  const port = Number(portRaw)
  if (!/^\d+$/.test(portRaw) || port > 65535) throw new ConfigError(`PORT=${JSON.stringify(portRaw)} is not a port number (0-65535)`)

  const databaseUrl = env.DATABASE_URL || undefined
  if (databaseUrl && !/^postgres(ql)?:\/\//.test(databaseUrl))
    throw new ConfigError('DATABASE_URL must start with postgres:// (leave it unset for SQLite in HEARTH_DATA_DIR)')

  const secret = env.HEARTH_SECRET || undefined
  if (secret !== undefined && secret.length < 32) throw new ConfigError('HEARTH_SECRET must be at least 32 characters')

  const smtpUrl = env.HEARTH_SMTP_URL || undefined
  if (smtpUrl && !/^smtps?:\/\/[^/]+/.test(smtpUrl)) throw new ConfigError('HEARTH_SMTP_URL must look like smtp://user:pass@host:port')

  const corsOrigins = (env.HEARTH_CORS_ORIGINS ?? '').split(',').map((s) => s.trim()).filter(Boolean)
  for (const origin of corsOrigins) {
    if (origin === '*') continue
    let ok = false
    try { ok = new URL(origin).origin === origin } catch {}
    if (!ok) throw new ConfigError(`HEARTH_CORS_ORIGINS has ${JSON.stringify(origin)}, which is not an origin like https://app.example.com`)
  }

  const rateRaw = env.HEARTH_RATE_LIMIT || '60/min'
  const rateLimit = parseRateLimit(rateRaw)
  if (!rateLimit) throw new ConfigError(`HEARTH_RATE_LIMIT=${JSON.stringify(rateRaw)} is not like 60/min (per s, min or hour)`)

  const authRateRaw = env.HEARTH_AUTH_RATE_LIMIT || '10/min'
  const authRateLimit = parseRateLimit(authRateRaw)
  if (!authRateLimit) throw new ConfigError(`HEARTH_AUTH_RATE_LIMIT=${JSON.stringify(authRateRaw)} is not like 10/min (per s, min or hour)`)

  const trustRaw = env.HEARTH_TRUST_PROXY || 'false'
  if (trustRaw !== 'true' && trustRaw !== 'false') throw new ConfigError(`HEARTH_TRUST_PROXY=${JSON.stringify(trustRaw)} is not true or false`)

  const creditsRaw = env.HEARTH_CREDITS || 'off'
  if (creditsRaw !== 'on' && creditsRaw !== 'off') throw new ConfigError(`HEARTH_CREDITS=${JSON.stringify(creditsRaw)} is not on or off`)

  const privateRaw = env.HEARTH_ALLOW_PRIVATE_UPSTREAMS || 'false'
  if (privateRaw !== 'true' && privateRaw !== 'false') throw new ConfigError(`HEARTH_ALLOW_PRIVATE_UPSTREAMS=${JSON.stringify(privateRaw)} is not true or false`)

  return {
    port,
    host: env.HOST || '0.0.0.0',
    dataDir: resolve(env.HEARTH_DATA_DIR || './hearth-data'),
    databaseUrl,
    secret,
    registration: oneOf('HEARTH_REGISTRATION', env.HEARTH_REGISTRATION, ['open', 'verify', 'invite', 'closed'] as const, 'open'),
    smtpUrl,
    corsOrigins,
    rateLimit,
    authRateLimit,
    trustProxy: trustRaw === 'true',
    creditsEnforced: creditsRaw === 'on',
    allowPrivateUpstreams: privateRaw === 'true',
    maxStreamsPerUser: wholeNumber('HEARTH_MAX_STREAMS_PER_USER', env.HEARTH_MAX_STREAMS_PER_USER, 20),
    maxRunsPerUser: wholeNumber('HEARTH_MAX_RUNS_PER_USER', env.HEARTH_MAX_RUNS_PER_USER, 5),
    uploadMaxBytes: byteSize('HEARTH_UPLOAD_MAX_BYTES', env.HEARTH_UPLOAD_MAX_BYTES, 25 * 1024 ** 2),
    storageQuotaBytes: byteSize('HEARTH_STORAGE_QUOTA_BYTES', env.HEARTH_STORAGE_QUOTA_BYTES, 1024 ** 3),
    taskConcurrency: wholeNumber('HEARTH_TASK_CONCURRENCY', env.HEARTH_TASK_CONCURRENCY, 4, 1000),
    taskUserConcurrency: wholeNumber('HEARTH_TASK_USER_CONCURRENCY', env.HEARTH_TASK_USER_CONCURRENCY, 2, 1000),
    taskLeaseMs: wholeNumber('HEARTH_TASK_LEASE_MS', env.HEARTH_TASK_LEASE_MS, 30_000, 3_600_000),
    taskRetryMs: wholeNumber('HEARTH_TASK_RETRY_MS', env.HEARTH_TASK_RETRY_MS, 2_000, 3_600_000),
    workflowRequestTimeoutMs: wholeNumber('HEARTH_WORKFLOW_REQUEST_TIMEOUT_MS', env.HEARTH_WORKFLOW_REQUEST_TIMEOUT_MS, 30_000, 600_000),
    workflowRunTimeoutMs: wholeNumber('HEARTH_WORKFLOW_RUN_TIMEOUT_MS', env.HEARTH_WORKFLOW_RUN_TIMEOUT_MS, 3_600_000, 86_400_000),
    logLevel: oneOf('HEARTH_LOG', env.HEARTH_LOG, ['debug', 'info', 'warn', 'error', 'silent'] as const, 'info'),
    s3: env.HEARTH_S3_URL ? parseS3Url(env.HEARTH_S3_URL) : undefined,
    sqlTimeoutMs: wholeNumber('HEARTH_SQL_TIMEOUT_MS', env.HEARTH_SQL_TIMEOUT_MS, 10_000, 3_600_000),
    sqlMaxRows: wholeNumber('HEARTH_SQL_MAX_ROWS', env.HEARTH_SQL_MAX_ROWS, 1_000, 1_000_000),
    publicUrl: parsePublicUrl(env.HEARTH_PUBLIC_URL),
    oidcProviders: parseOidcProviders(env),
  }
}

function parsePublicUrl(raw: string | undefined): string | undefined {
  if (!raw) return undefined
  let url: URL | undefined
  try {
    url = new URL(raw)
  } catch {}
  if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:') || url.search || url.hash) throw new ConfigError(`HEARTH_PUBLIC_URL=${JSON.stringify(raw)} is not an http(s) URL like https://hearth.example.com`)
  return url.href.replace(/\/+$/, '')
}

/** HEARTH_OIDC_<ID>_ISSUER starts a provider; _CLIENT_ID is then required. Messages never repeat a client secret. */
function parseOidcProviders(env: Record<string, string | undefined>): OidcProviderSettings[] {
  const found: OidcProviderSettings[] = []
  for (const key of Object.keys(env).sort()) {
    const m = /^HEARTH_OIDC_([A-Z0-9_]{1,32})_ISSUER$/.exec(key)
    if (!m || !env[key]) continue
    const prefix = `HEARTH_OIDC_${m[1]}_`
    const id = m[1]!.toLowerCase().replace(/_/g, '-')
    if (!/^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/.test(id)) throw new ConfigError(`${key}: the provider id ${JSON.stringify(id)} must be letters, digits and single _ between them`)
    const issuer = env[key]!
    let url: URL | undefined
    try {
      url = new URL(issuer)
    } catch {}
    if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:')) throw new ConfigError(`${key}=${JSON.stringify(issuer)} is not an http(s) URL`)
    const clientId = env[`${prefix}CLIENT_ID`]
    if (!clientId) throw new ConfigError(`${prefix}CLIENT_ID is needed with ${key}`)
    found.push({ id, issuer, clientId, clientSecret: env[`${prefix}CLIENT_SECRET`] || undefined, name: env[`${prefix}NAME`] || id, scopes: env[`${prefix}SCOPES`] || 'openid email profile' })
  }
  return found
}

/** HEARTH_SECRET, or the one kept in `<dataDir>/secret.key`, generated (mode 0600) on first start. */
export function resolveSecret(config: Config): string {
  if (config.secret) return config.secret
  mkdirSync(config.dataDir, { recursive: true })
  const file = join(config.dataDir, 'secret.key')
  if (existsSync(file)) {
    const stored = readFileSync(file, 'utf8').trim()
    if (stored.length < 32) throw new ConfigError(`${file} holds no usable secret; delete it or set HEARTH_SECRET`)
    return stored
  }
  const bytes = crypto.getRandomValues(new Uint8Array(48))
  const generated = Buffer.from(bytes).toString('base64url')
  writeFileSync(file, generated + '\n', { mode: 0o600, flag: 'wx' })
  chmodSync(file, 0o600)
  return generated
}
