/** @module The entry point and command line: the only place that reads the environment, migrates and listens. */
import { createApp, serveApp } from './app.ts'
import { createServices } from './services.ts'
import { ConfigError, parseConfig, resolveSecret, type Config } from './config.ts'
import { createDb, type Database } from './db/index.ts'
import { migrate } from './db/migrate.ts'
import { AppError } from './lib/errors.ts'
import { createLogger, type Logger } from './lib/logger.ts'
import { createUser } from './modules/users/service.ts'
import { createLoginLinksService, LOGIN_LINK_TTL, loginLinkUrl } from './modules/login-links/service.ts'
import { removeSetupTokenFile } from './modules/setup/service.ts'
import { VERSION } from './version.ts'
import { runSqliteChild } from './modules/connections/drivers/sqlite-child.ts'

const HELP = `hearth ${VERSION}: one server for everything behind an AI application's UI

Usage:
  hearth [serve]                                  start the server (default)
  hearth migrate                                  apply database migrations and exit
  hearth admin create --email E --username U      create an admin user; the password comes
                                                  from HEARTH_ADMIN_PASSWORD or a prompt
                                                  (until an admin exists, registering one over
                                                  the API needs the setup token from the start log)
  hearth admin login-link --user U [--ttl 15m] [--permanent]
                                                  print a link that signs U (username, email or
                                                  id) in: single use, valid --ttl (900, 15m, 2h,
                                                  7d; default 15m, at most 30d); --permanent: it
                                                  works until revoked (or --ttl is up). The base
                                                  is HEARTH_PUBLIC_URL, else http://localhost:PORT
  hearth version                                  print the version
  hearth --help                                   this text

Settings come from the environment: PORT, HOST, HEARTH_DATA_DIR, DATABASE_URL, HEARTH_SECRET,
HEARTH_REGISTRATION, HEARTH_SMTP_URL, HEARTH_CORS_ORIGINS, HEARTH_RATE_LIMIT, HEARTH_AUTH_RATE_LIMIT,
HEARTH_TRUST_PROXY, HEARTH_CREDITS, HEARTH_TASK_CONCURRENCY, HEARTH_TASK_USER_CONCURRENCY,
HEARTH_TASK_LEASE_MS, HEARTH_TASK_RETRY_MS, HEARTH_SQL_TIMEOUT_MS, HEARTH_SQL_MAX_ROWS,
HEARTH_ALLOW_PRIVATE_UPSTREAMS, HEARTH_LOG.
See the README for what each one means.
`

/** How long in-flight requests get to finish after SIGTERM/SIGINT. */
const SHUTDOWN_GRACE_MS = 10_000

async function main(argv: string[]): Promise<number> {
  const [command = 'serve', ...rest] = argv
  switch (command) {
    case '--help':
    case '-h':
    case 'help':
      process.stdout.write(HELP)
      return 0
    case 'version':
    case '--version':
    case '-v':
      process.stdout.write(`hearth ${VERSION}\n`)
      return 0
    case 'serve':
      return serve(loadConfig())
    case 'migrate': {
      const config = loadConfig()
      const logger = createLogger(config.logLevel)
      const database = await openDatabase(config, logger)
      await database.close()
      logger.flush()
      return 0
    }
    case '__sqlite-child':
      // not for people: the binary starts itself this way to read SQLite files for data connections
      return runSqliteChild()
    case 'admin':
      if (rest[0] === 'create') return adminCreate(loadConfig(), rest.slice(1))
      if (rest[0] === 'login-link') return adminLoginLink(loadConfig(), rest.slice(1))
      break
  }
  process.stderr.write(`hearth: unknown command "${argv.join(' ')}"; see hearth --help\n`)
  return 2
}

function loadConfig(): Config {
  return parseConfig(process.env)
}

async function openDatabase(config: Config, logger: Logger): Promise<Database> {
  const database = createDb({ url: config.databaseUrl, dataDir: config.dataDir })
  const result = await migrate(database)
  if (result.applied.length) logger.info('migrations applied', { applied: result.applied })
  if (result.changed.length) logger.warn('applied migrations have changed since they ran; they are not run again', { changed: result.changed })
  return database
}

async function serve(config: Config): Promise<number> {
  const logger = createLogger(config.logLevel)
  const secret = resolveSecret(config)
  const database = await openDatabase(config, logger)
  const shutdown = new AbortController()
  const base = { config, database, logger, secret, version: VERSION, shutdown: shutdown.signal }
  const services = await createServices(base)
  const app = createApp({ ...base, services })
  const server = serveApp(app, {
    port: config.port,
    hostname: config.host,
    // Every body limit is Hearth's own, so that each is a problem answer: JSON bodies are held to
    // 1 MiB by the request-context plugin, uploads to HEARTH_UPLOAD_MAX_BYTES by the files module as
    // the bytes stream. Bun's own cap would answer a bare 413 before any route runs; a body nobody
    // reads is not buffered (measured: a 404 route stops the sender after ~1 MB).
    maxRequestBodySize: Number.MAX_SAFE_INTEGER,
    // Streams send a ping every 15 s; a connection silent for longer than this is dead.
    idleTimeout: 120,
  })
  // a wildcard listen address is not one a browser can open
  const local = ['0.0.0.0', '::', '[::]'].includes(config.host) ? 'localhost' : config.host.includes(':') ? `[${config.host}]` : config.host
  const docs = `http://${local}:${server.port}/docs`
  const setupPending = await services.setup.pending()
  logger.info('listening', { url: `http://${config.host}:${server.port}`, docs, database: database.dialect, version: VERSION })
  if (setupPending) {
    logger.warn('no admin yet: register the first account (it becomes admin) with this setup token, or run `hearth admin create`', {
      setup_token: services.setup.token,
      setup_token_file: services.setup.file,
      register: `POST /api/v1/auth/register { "username", "email", "password", "setup_token" }`,
      page: `http://${local}:${server.port}/`,
    })
  }

  const { promise: stopped, resolve } = Promise.withResolvers<number>()
  let stopping = false
  const stop = async (signal: string) => {
    if (stopping) return
    stopping = true
    logger.info('shutting down', { signal })
    const deadline = Date.now() + SHUTDOWN_GRACE_MS
    shutdown.abort()
    const drained = server.stop(false).then(() => true)
    const timedOut = Bun.sleep(SHUTDOWN_GRACE_MS).then(() => false)
    if (!(await Promise.race([drained, timedOut]))) {
      logger.warn('in-flight requests did not finish in time; closing them', { grace_ms: SHUTDOWN_GRACE_MS })
      await server.stop(true)
    }
    // generations still running get what is left of the grace period, then are stopped (text kept)
    await services.close(Math.max(0, deadline - Date.now()))
    await database.close()
    logger.info('stopped')
    logger.flush()
    resolve(0)
  }
  process.on('SIGTERM', () => void stop('SIGTERM'))
  process.on('SIGINT', () => void stop('SIGINT'))
  return stopped
}

async function adminCreate(config: Config, args: string[]): Promise<number> {
  const flags = parseFlags(args)
  if (!flags.email || !flags.username) {
    process.stderr.write('hearth: admin create needs --email E --username U\n')
    return 2
  }
  const password = process.env.HEARTH_ADMIN_PASSWORD || (await promptPassword('Password for the new admin: '))
  if (password.length < 8 || password.length > 128) {
    process.stderr.write('hearth: the password must be 8 to 128 characters\n')
    return 2
  }
  return withDatabase(config, async (database) => {
    const user = await createUser(database, { email: flags.email!, username: flags.username!, password, role: 'admin', emailVerified: true })
    // setup is done: the token is dead, its file goes (other instances' files go when they next look)
    removeSetupTokenFile(config.dataDir)
    process.stdout.write(`admin ${user.username} <${user.email}> created (id ${user.id})\n`)
    return 0
  })
}

/** A command's work on the database, opened (and migrated) for it and closed after; a refusal (AppError) is one line and exit 1. */
async function withDatabase(config: Config, fn: (database: Database) => Promise<number>): Promise<number> {
  const logger = createLogger(config.logLevel)
  const database = await openDatabase(config, logger)
  try {
    return await fn(database)
  } catch (error) {
    if (error instanceof AppError) {
      process.stderr.write(`hearth: ${error.detail}\n`)
      return 1
    }
    throw error
  } finally {
    await database.close()
    logger.flush()
  }
}

/** `hearth admin login-link`: the same service as POST /api/v1/auth/login-links, with no admin behind it (created_by null). */
async function adminLoginLink(config: Config, args: string[]): Promise<number> {
  const flags = parseFlags(args, ['permanent'])
  const unknown = Object.keys(flags).filter((f) => !['user', 'ttl', 'permanent', '_'].includes(f))
  const ttl = flags.ttl === undefined ? undefined : parseDuration(flags.ttl)
  if (!flags.user || unknown.length || flags._ !== undefined || ttl === null || (ttl !== undefined && (ttl < LOGIN_LINK_TTL.min || ttl > LOGIN_LINK_TTL.max))) {
    process.stderr.write('hearth: admin login-link needs --user U, and takes --ttl (60 s to 30 days: 900, 15m, 2h, 7d) and --permanent\n')
    return 2
  }
  const permanent = flags.permanent !== undefined
  return withDatabase(config, async (database) => {
    const links = createLoginLinksService({ database })
    const userId = await links.findUser(flags.user!)
    if (!userId) {
      process.stderr.write(`hearth: no user has the username, email or id ${JSON.stringify(flags.user)}\n`)
      return 1
    }
    const link = await links.issue({ userId, ttlSeconds: ttl ?? (permanent ? null : LOGIN_LINK_TTL.default), singleUse: !permanent, createdBy: null })
    const base = config.publicUrl ?? `http://localhost:${config.port}`
    process.stdout.write(`${loginLinkUrl(base, link.token)}\n`)
    process.stdout.write(`${permanent ? 'reusable' : 'single use'}, ${link.expiresAt ? `expires ${link.expiresAt.toISOString()}` : 'never expires'} (id ${link.id}; revoke it with DELETE /api/v1/auth/login-links/{id})\n`)
    return 0
  })
}

/** `900` (seconds), `90s`, `15m`, `2h`, `7d` → seconds; null when it is none of these. */
function parseDuration(text: string): number | null {
  const m = /^(\d{1,9})([smhd]?)$/.exec(text.trim())
  if (!m) return null
  return Number(m[1]) * { '': 1, s: 1, m: 60, h: 3600, d: 86_400 }[m[2] as '' | 's' | 'm' | 'h' | 'd']
}

/** `--name value` and `--name=value`; the `booleans` take no value (present: ''). Anything else lands in `_`. */
function parseFlags(args: string[], booleans: string[] = []): Record<string, string> {
  const flags: Record<string, string> = {}
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!
    const eq = arg.match(/^--([\w-]+)=(.*)$/)
    if (eq) flags[eq[1]!] = eq[2]!
    else if (arg.startsWith('--') && booleans.includes(arg.slice(2))) flags[arg.slice(2)] = ''
    else if (arg.startsWith('--') && args[i + 1] !== undefined) flags[arg.slice(2)] = args[++i]!
    else flags._ = arg
  }
  return flags
}

/** Read a line from stdin; when it is a terminal, without echoing what is typed. */
async function promptPassword(question: string): Promise<string> {
  process.stderr.write(question)
  const stdin = process.stdin
  const tty = stdin.isTTY
  if (tty) stdin.setRawMode(true)
  let input = ''
  try {
    for await (const chunk of stdin) {
      const text = String(chunk)
      for (const ch of text) {
        if (ch === '\u0003') throw new Error('cancelled')
        if (ch === '\r' || ch === '\n') return input
        if (ch === '\u007f') input = input.slice(0, -1)
        else input += ch
      }
    }
    return input
  } finally {
    if (tty) stdin.setRawMode(false)
    stdin.pause()
    process.stderr.write('\n')
  }
}

// No top-level await: the binary is compiled to bytecode, which needs a CommonJS-shaped entry.
main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    if (error instanceof ConfigError) {
      process.stderr.write(`hearth: ${error.message}\n`)
      process.exit(2)
    }
    process.stderr.write(`hearth: ${error instanceof Error ? error.message : String(error)}\n`)
    process.exit(1)
  },
)
