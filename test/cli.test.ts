/** The command line, run as a real process from source (the binary is smoke-tested by .ci/run). */
import { afterAll, describe, expect, test } from 'bun:test'
import { existsSync, mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Dialect } from '../src/db/index.ts'
import { createTestDatabase, eachDialect, type TestDatabase } from './helpers/db.ts'

const ENTRY = join(import.meta.dir, '../src/index.ts')

function run(args: string[], env: Record<string, string> = {}, stdin?: string) {
  const proc = Bun.spawnSync([process.execPath, ENTRY, ...args], {
    env: { PATH: process.env.PATH ?? '', HEARTH_LOG: 'warn', ...env },
    stdin: stdin === undefined ? 'ignore' : new TextEncoder().encode(stdin),
  })
  return { code: proc.exitCode, stdout: proc.stdout.toString(), stderr: proc.stderr.toString() }
}

/** servers started by a test: killed after the file, should a failing test leave one running */
const started: { kill(signal?: number | NodeJS.Signals): void; exitCode: number | null }[] = []
afterAll(() => {
  for (const proc of started) if (proc.exitCode === null) proc.kill('SIGKILL')
})

/** `hearth serve` on a free loopback port, once it logs "listening" (with whatever it logged in the same write). */
async function startServe(env: Record<string, string>) {
  const proc = Bun.spawn([process.execPath, ENTRY], { env: { PATH: process.env.PATH ?? '', ...env, PORT: '0', HOST: '127.0.0.1', HEARTH_LOG: 'info' }, stdout: 'pipe', stderr: 'pipe' })
  started.push(proc)
  const reader = proc.stdout.getReader()
  let out = ''
  let port: string | undefined
  while (!port) {
    const { value, done } = await reader.read()
    if (done) throw new Error('server exited: ' + out)
    out += new TextDecoder().decode(value)
    port = /"msg":"listening","url":"http:\/\/[^:]+:(\d+)"/.exec(out)?.[1]
  }
  return {
    base: `http://127.0.0.1:${port}`,
    output: () => out,
    /** SIGTERM, then the exit code once the output is read to its end */
    async stop() {
      proc.kill('SIGTERM')
      const code = await proc.exited
      for (;;) {
        const { value, done } = await reader.read()
        if (done) break
        out += new TextDecoder().decode(value)
      }
      return code
    },
  }
}

const dbs: TestDatabase[] = []
afterAll(async () => {
  for (const d of dbs) await d.drop()
})
/** env pointing the CLI at a fresh database of the dialect under test */
async function freshEnv(dialect: Dialect): Promise<Record<string, string>> {
  const d = await createTestDatabase(dialect)
  dbs.push(d)
  return { HEARTH_DATA_DIR: d.dataDir, ...(d.url ? { DATABASE_URL: d.url } : {}) }
}

describe('hearth command line', () => {
  test('version and --help', () => {
    expect(run(['version'])).toMatchObject({ code: 0, stdout: expect.stringMatching(/^hearth \d+\.\d+\.\d+\n$/) })
    const help = run(['--help'])
    expect(help.code).toBe(0)
    for (const word of ['serve', 'migrate', 'admin create', 'HEARTH_ADMIN_PASSWORD']) expect(help.stdout).toContain(word)
  })

  test('an unknown command exits 2', () => {
    const r = run(['frobnicate'])
    expect(r.code).toBe(2)
    expect(r.stderr).toContain('unknown command')
  })

  test('a bad setting stops the start with one line naming the variable', () => {
    const r = run(['serve'], { PORT: 'abc', HEARTH_DATA_DIR: mkdtempSync(join(tmpdir(), 'hearth-cli-')) })
    expect(r.code).toBe(2)
    expect(r.stderr.trim().split('\n')).toHaveLength(1)
    expect(r.stderr).toContain('PORT')
  })

  test('a bad HEARTH_S3_URL stops the start without echoing its secret', () => {
    const r = run(['serve'], { HEARTH_S3_URL: 's3://key:TOPSECRET@minio:9000/Bad_Bucket', HEARTH_DATA_DIR: mkdtempSync(join(tmpdir(), 'hearth-cli-')) })
    expect(r.code).toBe(2)
    expect(r.stderr.trim().split('\n')).toHaveLength(1)
    expect(r.stderr).toContain('HEARTH_S3_URL')
    expect(r.stderr).not.toContain('TOPSECRET')
  })

})

eachDialect('hearth command line on a database', (dialect) => {
  test('migrate is idempotent', async () => {
    const env = await freshEnv(dialect)
    expect(run(['migrate'], env).code).toBe(0)
    expect(run(['migrate'], env).code).toBe(0)
  })

  test('admin create: password from HEARTH_ADMIN_PASSWORD, then from stdin', async () => {
    const d = await createTestDatabase(dialect)
    dbs.push(d)
    const env = { HEARTH_DATA_DIR: d.dataDir, ...(d.url ? { DATABASE_URL: d.url } : {}) }
    const r = run(['admin', 'create', '--email', 'Root@Example.com', '--username', 'root'], { ...env, HEARTH_ADMIN_PASSWORD: 'correct-horse' })
    expect(r).toMatchObject({ code: 0 })
    expect(r.stdout).toContain('admin root <root@example.com> created')
    expect(r.stdout + r.stderr).not.toContain('correct-horse')
    const piped = run(['admin', 'create', '--email=second@example.com', '--username=second'], env, 'battery-staple\n')
    expect(piped.code).toBe(0)
    const { db, t } = d.database
    const rows = await db.select().from(t.users).orderBy(t.users.username)
    expect(rows.map((u) => [u.username, u.email, u.role, u.emailVerified])).toEqual([['root', 'root@example.com', 'admin', true], ['second', 'second@example.com', 'admin', true]])
    expect(await Bun.password.verify('correct-horse', rows[0]!.passwordHash)).toBe(true)
    expect(await Bun.password.verify('battery-staple', rows[1]!.passwordHash)).toBe(true)
    expect(rows[0]!.passwordHash).toStartWith('$argon2id$')

    const again = run(['admin', 'create', '--email', 'root@example.com', '--username', 'root2'], { ...env, HEARTH_ADMIN_PASSWORD: 'correct-horse' })
    expect(again.code).toBe(1)
    expect(again.stderr).toContain('email is already taken')
    expect(run(['admin', 'create', '--email', 'x@example.com'], env).code).toBe(2)
    expect(run(['admin', 'create', '--email', 'y@example.com', '--username', 'y'], { ...env, HEARTH_ADMIN_PASSWORD: 'short' }).code).toBe(2)
  }, 20_000) // five CLI starts one after the other: ~3 s alone, more on a loaded machine

  test('serve: a body over a limit is a 413 problem from Hearth, never a bare 413 from the HTTP layer', async () => {
    const server = await startServe({ ...(await freshEnv(dialect)), HEARTH_UPLOAD_MAX_BYTES: '1MiB' })
    const res = await fetch(`${server.base}/api/v1/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: new Uint8Array(5 * 1024 * 1024) })
    expect([res.status, res.headers.get('content-type'), (await res.json()).code]).toEqual([413, 'application/problem+json', 'PAYLOAD_TOO_LARGE'])
    expect(await server.stop()).toBe(0)
  }, 15_000)

  test('serve: the start log names the docs and, while no admin exists, the setup token (also in the data dir); answers; stops cleanly on SIGTERM', async () => {
    const env = await freshEnv(dialect)
    const server = await startServe(env)
    const { base, output } = server
    expect(await (await fetch(`${base}/health`)).json()).toEqual({ status: 'healthy' })
    expect((await fetch(`${base}/ready`)).status).toBe(200)
    const lines = output().split('\n').filter(Boolean).map((l) => JSON.parse(l))
    expect(lines.find((l) => l.msg === 'listening')).toMatchObject({ url: `${base}`, docs: `${base}/docs` })
    const setup = lines.find((l) => l.setup_token)
    expect([setup.level, setup.setup_token_file]).toEqual(['warn', join(env.HEARTH_DATA_DIR!, 'setup-token')])
    expect(setup.setup_token).toMatch(/^hst_/)
    expect(setup.msg).toContain('hearth admin create')
    expect(readFileSync(setup.setup_token_file, 'utf8').trim()).toBe(setup.setup_token)
    const page = await fetch(`${base}/`)
    expect(page.headers.get('content-type')).toStartWith('text/html')
    expect(await page.text()).toContain('href="/docs"')
    expect(await server.stop()).toBe(0)
    expect(output()).toContain('"msg":"shutting down","signal":"SIGTERM"')
    expect(output()).toContain('"msg":"stopped"')

    // `hearth admin create` ends the setup: the file goes, and the next start shows no token
    expect(run(['admin', 'create', '--email', 'boss@example.com', '--username', 'boss'], { ...env, HEARTH_ADMIN_PASSWORD: 'correct-horse' }).code).toBe(0)
    expect(existsSync(setup.setup_token_file)).toBe(false)
    const again = await startServe(env)
    expect(again.output()).toContain('"msg":"listening"')
    expect(again.output()).not.toContain('setup_token')
    expect(await again.stop()).toBe(0)
  }, 15_000)
})

const npm = Bun.which('npm')

describe('npm start (the README\'s way to run from source)', () => {
  test.skipIf(!npm)('SIGTERM to npm reaches the server: it stops cleanly and nothing is left running', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'hearth-npm-'))
    // its own process group, so that whatever is left can be cleaned up whatever happens
    const proc = Bun.spawn([npm!, 'start'], {
      cwd: join(import.meta.dir, '..'),
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? tmpdir(), HEARTH_DATA_DIR: dataDir, PORT: '0', HOST: '127.0.0.1', HEARTH_LOG: 'info' },
      stdout: 'pipe',
      stderr: 'pipe',
      detached: true,
    })
    try {
      const reader = proc.stdout.getReader()
      let out = ''
      let port: string | undefined
      while (!port) {
        const { value, done } = await reader.read()
        if (done) throw new Error('npm start exited: ' + out)
        out += new TextDecoder().decode(value)
        port = /"msg":"listening","url":"http:\/\/[^:]+:(\d+)"/.exec(out)?.[1]
      }
      expect((await fetch(`http://127.0.0.1:${port}/health`)).status).toBe(200)
      proc.kill('SIGTERM')
      expect(await proc.exited).toBe(0)
      for (;;) {
        const { value, done } = await reader.read()
        if (done) break
        out += new TextDecoder().decode(value)
      }
      expect(out).toContain('"msg":"shutting down","signal":"SIGTERM"')
      expect(out).toContain('"msg":"stopped"')
      // nothing answers on the port any more: no server was left behind
      expect(await fetch(`http://127.0.0.1:${port}/health`).then(() => 'answered', () => 'refused')).toBe('refused')
    } finally {
      try {
        process.kill(-proc.pid, 'SIGKILL')
      } catch {}
    }
  }, 20_000)

  test.skipIf(!npm)('arguments after -- reach the command line (npm start -- admin create …)', () => {
    const r = Bun.spawnSync([npm!, 'start', '--silent', '--', 'version'], { cwd: join(import.meta.dir, '..'), env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? tmpdir() } })
    expect(r.exitCode).toBe(0)
    expect(r.stdout.toString()).toMatch(/^hearth \d+\.\d+\.\d+\n$/)
  })
})
