import { describe, expect, test } from 'bun:test'
import { mkdtempSync, readFileSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ConfigError, parseConfig, resolveSecret } from '../src/config.ts'

describe('parseConfig', () => {
  test('defaults', () => {
    const c = parseConfig({})
    expect(c).toMatchObject({ port: 8787, host: '0.0.0.0', databaseUrl: undefined, registration: 'open', corsOrigins: [], rateLimit: { limit: 60, windowMs: 60_000 }, logLevel: 'info', maxStreamsPerUser: 20, maxRunsPerUser: 5 })
    expect(c.dataDir).toEndWith('/hearth-data')
    expect(c).toMatchObject({ uploadMaxBytes: 25 * 1024 ** 2, storageQuotaBytes: 1024 ** 3 })
  })

  test('sizes in bytes, or with a binary unit', () => {
    expect(parseConfig({ HEARTH_UPLOAD_MAX_BYTES: '1048576', HEARTH_STORAGE_QUOTA_BYTES: '2GiB' })).toMatchObject({ uploadMaxBytes: 1024 ** 2, storageQuotaBytes: 2 * 1024 ** 3 })
    expect(parseConfig({ HEARTH_UPLOAD_MAX_BYTES: '10 MiB', HEARTH_STORAGE_QUOTA_BYTES: '500k' })).toMatchObject({ uploadMaxBytes: 10 * 1024 ** 2, storageQuotaBytes: 500 * 1024 })
  })

  test('reads every setting', () => {
    const c = parseConfig({
      PORT: '9000', HOST: '127.0.0.1', HEARTH_DATA_DIR: '/tmp/x', DATABASE_URL: 'postgres://u@h/db', HEARTH_SECRET: 'x'.repeat(32),
      HEARTH_REGISTRATION: 'invite', HEARTH_SMTP_URL: 'smtp://a:b@localhost:25', HEARTH_CORS_ORIGINS: 'https://a.example, http://localhost:3000',
      HEARTH_RATE_LIMIT: '100/s', HEARTH_LOG: 'warn', HEARTH_MAX_STREAMS_PER_USER: '3', HEARTH_MAX_RUNS_PER_USER: '1',
    })
    expect(c).toMatchObject({ maxStreamsPerUser: 3, maxRunsPerUser: 1 })
    expect(c).toMatchObject({ port: 9000, host: '127.0.0.1', dataDir: '/tmp/x', databaseUrl: 'postgres://u@h/db', registration: 'invite', smtpUrl: 'smtp://a:b@localhost:25', corsOrigins: ['https://a.example', 'http://localhost:3000'], rateLimit: { limit: 100, windowMs: 1000 }, logLevel: 'warn' })
  })

  const bad: [string, Record<string, string>][] = [
    ['PORT', { PORT: 'eighty' }],
    ['PORT', { PORT: '70000' }],
    ['DATABASE_URL', { DATABASE_URL: 'mysql://x' }],
    ['HEARTH_SECRET', { HEARTH_SECRET: 'short' }],
    ['HEARTH_REGISTRATION', { HEARTH_REGISTRATION: 'sometimes' }],
    ['HEARTH_SMTP_URL', { HEARTH_SMTP_URL: 'mail.example.com' }],
    ['HEARTH_CORS_ORIGINS', { HEARTH_CORS_ORIGINS: 'https://a.example/path' }],
    ['HEARTH_RATE_LIMIT', { HEARTH_RATE_LIMIT: 'lots' }],
    ['HEARTH_RATE_LIMIT', { HEARTH_RATE_LIMIT: '0/min' }],
    ['HEARTH_LOG', { HEARTH_LOG: 'loud' }],
    ['HEARTH_MAX_STREAMS_PER_USER', { HEARTH_MAX_STREAMS_PER_USER: '0' }],
    ['HEARTH_MAX_STREAMS_PER_USER', { HEARTH_MAX_STREAMS_PER_USER: 'many' }],
    ['HEARTH_MAX_RUNS_PER_USER', { HEARTH_MAX_RUNS_PER_USER: '1.5' }],
    ['HEARTH_MAX_RUNS_PER_USER', { HEARTH_MAX_RUNS_PER_USER: '100001' }],
    ['HEARTH_UPLOAD_MAX_BYTES', { HEARTH_UPLOAD_MAX_BYTES: '0' }],
    ['HEARTH_UPLOAD_MAX_BYTES', { HEARTH_UPLOAD_MAX_BYTES: '25 megs' }],
    ['HEARTH_UPLOAD_MAX_BYTES', { HEARTH_UPLOAD_MAX_BYTES: '-5' }],
    ['HEARTH_STORAGE_QUOTA_BYTES', { HEARTH_STORAGE_QUOTA_BYTES: '1.5GiB' }],
    ['HEARTH_STORAGE_QUOTA_BYTES', { HEARTH_STORAGE_QUOTA_BYTES: '9999999999999999TiB' }],
  ]
  for (const [name, env] of bad) {
    test(`a bad ${name} is one line naming it`, () => {
      let error: unknown
      try {
        parseConfig(env)
      } catch (e) {
        error = e
      }
      expect(error).toBeInstanceOf(ConfigError)
      expect((error as Error).message).toContain(name)
      expect((error as Error).message).not.toContain('\n')
    })
  }
})

describe('resolveSecret', () => {
  test('generates a 0600 secret file once and reuses it', () => {
    const dir = mkdtempSync(join(tmpdir(), 'hearth-secret-'))
    const config = parseConfig({ HEARTH_DATA_DIR: dir })
    const first = resolveSecret(config)
    expect(first.length).toBeGreaterThanOrEqual(32)
    const file = join(dir, 'secret.key')
    expect(statSync(file).mode & 0o777).toBe(0o600)
    expect(readFileSync(file, 'utf8').trim()).toBe(first)
    expect(resolveSecret(config)).toBe(first)
  })

  test('HEARTH_SECRET wins and writes nothing', () => {
    const dir = mkdtempSync(join(tmpdir(), 'hearth-secret-'))
    const secret = 's'.repeat(40)
    expect(resolveSecret(parseConfig({ HEARTH_DATA_DIR: dir, HEARTH_SECRET: secret }))).toBe(secret)
    expect(() => statSync(join(dir, 'secret.key'))).toThrow()
  })
})
