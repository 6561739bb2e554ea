/** createTestApp(): the real app over a fresh migrated database, with its log lines captured. */
import { treaty } from '@elysiajs/eden'
import { createApp, type AppDeps } from '../../src/app.ts'
import { parseConfig, type Config } from '../../src/config.ts'
import { createLogger } from '../../src/lib/logger.ts'
import { createServices, type BaseDeps } from '../../src/services.ts'
import { createDb, type Dialect } from '../../src/db/index.ts'
import { createTestDatabase, type TestDatabase } from './db.ts'

export const TEST_SECRET = 'test-secret-test-secret-test-secret-0123456789'

export interface TestApp {
  app: ReturnType<typeof createApp>
  api: ReturnType<typeof treaty<ReturnType<typeof createApp>>>
  deps: AppDeps
  db: TestDatabase
  /** every log line written so far, parsed */
  logs: Record<string, unknown>[]
  /** the raw log output, to assert what never appears in it */
  logText(): string
  /** in-process request helper */
  request(method: string, path: string, init?: RequestOptions): Promise<TestResponse>
  /**
   * true (the default): `request` puts the app's setup token into POST /auth/register and
   * /auth/verify-register bodies that have no `setup_token`, as an operator who read the start log
   * would, so a suite's first registration makes its admin. Once an admin exists the token is
   * ignored by the server. Tests of the setup rule itself set it to false.
   */
  presentSetupToken: boolean
  close(): Promise<void>
}

export interface RequestOptions {
  body?: unknown
  /** a raw body string (sent as-is) */
  raw?: string | ReadableStream
  headers?: Record<string, string>
  token?: string
}

export interface TestResponse {
  status: number
  headers: Headers
  /** parsed JSON when the response is JSON, else the text */
  body: any
  text: string
}

/** Test defaults: generous limits, so suites are not throttled; fakes on loopback usable by users. Tests of those rules set their own. */
const TEST_ENV = { HEARTH_LOG: 'debug', HEARTH_RATE_LIMIT: '100000/min', HEARTH_AUTH_RATE_LIMIT: '100000/min', HEARTH_ALLOW_PRIVATE_UPSTREAMS: 'true' }

export async function createTestApp(dialect: Dialect, env: Record<string, string> = {}, overrides: Partial<BaseDeps> = {}): Promise<TestApp> {
  return buildTestApp(await createTestDatabase(dialect), env, overrides, true)
}

/**
 * Another instance of the server on the same (Postgres) database, with its own connection pool
 * and in-memory state — what a second process behind a load balancer would be.
 */
export async function createSecondInstance(first: TestApp, env: Record<string, string> = {}, overrides: Partial<BaseDeps> = {}): Promise<TestApp> {
  if (!first.db.url) throw new Error('a second instance needs Postgres')
  const database = createDb({ url: first.db.url, dataDir: first.db.dataDir })
  return buildTestApp({ ...first.db, database, drop: () => database.close() }, env, overrides, false)
}

async function buildTestApp(db: TestDatabase, env: Record<string, string>, overrides: Partial<BaseDeps>, owner: boolean): Promise<TestApp> {
  const config: Config = parseConfig({ HEARTH_DATA_DIR: db.dataDir, ...TEST_ENV, ...env })
  const lines: string[] = []
  const logger = createLogger(config.logLevel, (chunk) => void lines.push(chunk))
  const shutdown = new AbortController()
  const base = { config, database: db.database, logger, secret: TEST_SECRET, version: '0.0.0-test', shutdown: shutdown.signal, ...overrides }
  const services = await createServices(base)
  const deps: AppDeps = { ...base, services }
  const app = createApp(deps)
  const logText = () => {
    logger.flush()
    return lines.join('')
  }
  const testApp: TestApp = {
    app,
    api: treaty(app),
    deps,
    db,
    get logs() {
      return logText().split('\n').filter(Boolean).map((l) => JSON.parse(l))
    },
    logText,
    presentSetupToken: true,
    request: (method, path, init) => requestApp(app, method, path, testApp.presentSetupToken ? withSetupToken(method, path, init, services.setup.token) : init),
    async close() {
      shutdown.abort()
      await services.close()
      await (owner ? db.drop() : db.database.close())
    },
  }
  return testApp
}

const REGISTRATION_PATHS = new Set(['/api/v1/auth/register', '/api/v1/auth/verify-register'])

function withSetupToken(method: string, path: string, init: RequestOptions | undefined, token: string): RequestOptions | undefined {
  const body = init?.body
  if (method !== 'POST' || !REGISTRATION_PATHS.has(path) || !body || typeof body !== 'object' || Array.isArray(body) || 'setup_token' in body) return init
  return { ...init, body: { ...body, setup_token: token } }
}

export async function requestApp(app: { handle(r: Request): Promise<Response> }, method: string, path: string, init: RequestOptions = {}): Promise<TestResponse> {
  const headers: Record<string, string> = { ...init.headers }
  let body: BodyInit | undefined
  if (init.raw !== undefined) body = init.raw
  else if (init.body !== undefined) {
    body = JSON.stringify(init.body)
    headers['content-type'] ??= 'application/json'
  }
  if (init.token) headers.authorization = `Bearer ${init.token}`
  const res = await app.handle(new Request(`http://localhost${path}`, { method, headers, body, duplex: 'half' } as RequestInit))
  const text = await res.text()
  const type = res.headers.get('content-type') ?? ''
  return { status: res.status, headers: res.headers, text, body: type.includes('json') && text ? JSON.parse(text) : text }
}
