/** The command line, run as a real process from source (the binary is smoke-tested by .ci/run). */
import { afterAll, describe, expect, test } from 'bun:test'
import { mkdtempSync } from 'node:fs'
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
  })

  test('serve: answers, then stops cleanly on SIGTERM', async () => {
    const env = await freshEnv(dialect)
    const proc = Bun.spawn([process.execPath, ENTRY], { env: { PATH: process.env.PATH ?? '', ...env, PORT: '0', HOST: '127.0.0.1', HEARTH_LOG: 'info' }, stdout: 'pipe', stderr: 'pipe' })
    const reader = proc.stdout.getReader()
    let out = ''
    let url: string | undefined
    while (!url) {
      const { value, done } = await reader.read()
      if (done) throw new Error('server exited: ' + out)
      out += new TextDecoder().decode(value)
      url = /"msg":"listening","url":"http:\/\/[^:]+:(\d+)"/.exec(out)?.[1]
    }
    const base = `http://127.0.0.1:${url}`
    expect(await (await fetch(`${base}/health`)).json()).toEqual({ status: 'healthy' })
    expect((await fetch(`${base}/ready`)).status).toBe(200)
    proc.kill('SIGTERM')
    expect(await proc.exited).toBe(0)
    for (;;) {
      const { value, done } = await reader.read()
      if (done) break
      out += new TextDecoder().decode(value)
    }
    expect(out).toContain('"msg":"shutting down","signal":"SIGTERM"')
    expect(out).toContain('"msg":"stopped"')
  })
})
