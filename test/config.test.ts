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
    ['HEARTH_TASK_CONCURRENCY', { HEARTH_TASK_CONCURRENCY: '0' }],
    ['HEARTH_TASK_CONCURRENCY', { HEARTH_TASK_CONCURRENCY: '1001' }],
    ['HEARTH_TASK_USER_CONCURRENCY', { HEARTH_TASK_USER_CONCURRENCY: 'two' }],
    ['HEARTH_TASK_LEASE_MS', { HEARTH_TASK_LEASE_MS: '1.5' }],
    ['HEARTH_TASK_RETRY_MS', { HEARTH_TASK_RETRY_MS: '-1' }],
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

describe('HEARTH_S3_URL', () => {
  const s3 = (url: string) => parseConfig({ HEARTH_S3_URL: url }).s3

  test('unset: files stay on local disk', () => {
    expect(parseConfig({}).s3).toBeUndefined()
    expect(parseConfig({ HEARTH_S3_URL: '' }).s3).toBeUndefined()
  })

  const good: [string, string, object][] = [
    ['plain HTTP, path-style by default', 's3://minio:minio-secret@minio.internal:9000/hearth', { endpoint: 'http://minio.internal:9000', bucket: 'hearth', region: 'us-east-1', accessKeyId: 'minio', secretAccessKey: 'minio-secret', virtualHostedStyle: false }],
    ['s3+http:// is the same', 's3+http://k:s@10.0.0.5:9000/files/', { endpoint: 'http://10.0.0.5:9000', bucket: 'files' }],
    ['s3+https:// for TLS, with a region', 's3+https://k:s@s3.example.com/my.bucket?region=eu-central-1&path_style=true', { endpoint: 'https://s3.example.com', bucket: 'my.bucket', region: 'eu-central-1', virtualHostedStyle: false }],
    ['path_style=false puts the bucket in the host', 's3+https://k:s@s3.eu-west-1.amazonaws.com/hearth-eu?region=eu-west-1&path_style=false', { endpoint: 'https://hearth-eu.s3.eu-west-1.amazonaws.com', bucket: 'hearth-eu', virtualHostedStyle: true }],
    ['key and secret are percent-decoded (/ + @ : in AWS secrets)', 's3+https://AKIA%2FX:wJal%2FrXU+tn%40F%3AE@s3.amazonaws.com/b-1', { accessKeyId: 'AKIA/X', secretAccessKey: 'wJal/rXU+tn@F:E' }],
    ['an IPv6 host keeps its brackets', 's3://k:s@[::1]:9000/bkt', { endpoint: 'http://[::1]:9000' }],
  ]
  for (const [name, url, expected] of good) test(name, () => expect(s3(url)).toMatchObject(expected))

  const bad: [string, string][] = [
    ['not a URL', 'minio:9000/hearth'],
    ['another scheme', 'https://k:SECRET1@host/bucket'],
    ['no key pair', 's3://host:9000/bucket'],
    ['no secret', 's3://key@host:9000/bucket'],
    ['no bucket', 's3://k:SECRET1@host:9000'],
    ['a bucket and more path', 's3://k:SECRET1@host:9000/bucket/prefix'],
    ['a bucket name S3 refuses', 's3://k:SECRET1@host:9000/My_Bucket'],
    ['an unknown parameter', 's3://k:SECRET1@host:9000/bucket?pathstyle=true'],
    ['path_style not true or false', 's3://k:SECRET1@host:9000/bucket?path_style=yes'],
    ['a bad region', 's3://k:SECRET1@host:9000/bucket?region=EU%20West'],
    ['broken percent-encoding', 's3://k:SECRET1%E0%A4%A@host:9000/bucket'],
    ['a / left unencoded in the secret', 's3://k:SECRET1/xyz@host:9000/bucket'],
  ]
  for (const [name, url] of bad) {
    test(`refused: ${name} — one line naming the variable, never the secret`, () => {
      let error: unknown
      try {
        parseConfig({ HEARTH_S3_URL: url })
      } catch (e) {
        error = e
      }
      expect(error).toBeInstanceOf(ConfigError)
      const message = (error as Error).message
      expect(message).toStartWith('HEARTH_S3_URL ')
      expect(message).not.toContain('\n')
      expect(message).not.toContain('SECRET1')
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
