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
  logLevel: LogLevel
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
    logLevel: oneOf('HEARTH_LOG', env.HEARTH_LOG, ['debug', 'info', 'warn', 'error', 'silent'] as const, 'info'),
  }
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
