/**
 * The typed client as a frontend gets it: the README's "Typed client" steps, done in a throw-away
 * project outside the repository — `npm run build:client`, then `npm install <repo>/client
 * @elysiajs/eden elysia` with `install-links=true` — and a strict `tsc` over a file that registers,
 * logs in, lists, streams a send and calls /v1, beside a file with one wrong field that must fail.
 */
import { afterAll, expect, test } from 'bun:test'
import { lstatSync, mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync, existsSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const repo = join(import.meta.dir, '../..')
const frontend = mkdtempSync(join(tmpdir(), 'hearth-frontend-'))
afterAll(() => rmSync(frontend, { recursive: true, force: true }))

const versionOf = (pkg: string): string => JSON.parse(readFileSync(join(repo, 'node_modules', pkg, 'package.json'), 'utf8')).version

/** npm with none of the settings an enclosing `npm test` exports (its prefix is the repository). */
function run(cmd: string[], cwd: string) {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_/i.test(k) || /^npm_config_(cache|registry|userconfig)$/i.test(k)))
  const p = Bun.spawnSync(cmd, { cwd, env: { ...env, INIT_CWD: cwd }, stdout: 'pipe', stderr: 'pipe' })
  return { code: p.exitCode, out: `${p.stdout.toString()}${p.stderr.toString()}` }
}

/** `file(line,col): error TSxxxx: message` lines of a tsc run. */
const errorsOf = (out: string) =>
  [...out.matchAll(/^(.+?)\((\d+),\d+\): error (TS\d+): (.*)$/gm)].map(([, file, line, code, message]) => ({ file: file!, line: Number(line), code: code!, message: message! }))

const TSCONFIG = {
  compilerOptions: {
    target: 'ES2022',
    module: 'ESNext',
    moduleResolution: 'bundler',
    lib: ['ES2022', 'DOM', 'DOM.Iterable'],
    strict: true,
    noUncheckedIndexedAccess: true,
    exactOptionalPropertyTypes: true,
    noUnusedLocals: true,
    verbatimModuleSyntax: true,
    isolatedModules: true,
    // elysia's and eden's own declarations do not pass a strict check of their own (and want Bun's types)
    skipLibCheck: true,
    noEmit: true,
  },
  include: ['src'],
}

/** A frontend's use of every kind of call: the checks are types; nothing here runs. */
const USES = `import { treaty } from '@elysiajs/eden'
import type { App } from 'hearth-client'

type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false
const exact = <A, B>(same: Same<A, B>) => same

const base = 'http://localhost:8787'
const api = treaty<App>(base, { parseDate: false })

export async function signUpAndChat(): Promise<string[]> {
  const registered = await api.api.v1.auth.register.post({ username: 'ada', email: 'ada@example.com', password: 'correct-horse-battery' })
  if (registered.error) return [registered.error.value.code]
  const access: string = registered.data.tokens.access_token

  const login = await api.api.v1.auth.login.post({ email: 'ada@example.com', password: 'correct-horse-battery' })
  if (login.error) return [login.error.value.code]
  const role: 'user' | 'admin' = login.data.user.role

  const authed = treaty<App>(base, { parseDate: false, headers: { authorization: \`Bearer \${access}\` } })
  const memories = await authed.api.v1.memories.get({ query: { limit: 10, offset: 0 } })
  const seen: string[] = [role, ...(memories.data?.items.map((m) => m.content) ?? []), String(memories.data?.has_more)]

  const created = await authed.api.v1.conversations.post({ title: 'Hello' })
  if (created.error) return [created.error.value.title]
  const sent = await authed.api.v1.conversations({ id: created.data.id }).messages.post({ content: 'Hi there' }, { headers: { accept: 'text/event-stream' } })
  if (sent.error) return [sent.error.value.detail]
  if (!(Symbol.asyncIterator in sent.data)) return [sent.data.assistant_message.content]
  for await (const e of sent.data) {
    exact<typeof e.event, 'message.created' | 'delta' | 'reasoning' | 'tool_call' | 'tool_approval_required' | 'tool_result' | 'progress' | 'result' | 'visualization' | 'usage' | 'error' | 'title' | 'done' | 'shutdown' | 'revoked' | 'deleted'>(true)
    switch (e.event) {
      case 'message.created':
        seen.push(e.data.user_message.content, e.data.assistant_message_id)
        break
      case 'delta':
      case 'reasoning':
        exact<typeof e.data, { text: string }>(true)
        seen.push(e.data.text)
        break
      case 'tool_call':
        seen.push(e.data.name, e.data.arguments)
        break
      case 'tool_approval_required':
        exact<typeof e.data, { id: string; tool: string; arguments: string }>(true)
        break
      case 'tool_result':
        exact<typeof e.data.is_error, boolean>(true)
        seen.push(e.data.id, e.data.name, ...e.data.result.content.map((part) => part.type))
        break
      case 'progress':
        exact<typeof e.data.stage, 'analyzing' | 'generating_sql' | 'executing' | 'retrying'>(true)
        seen.push(e.data.message)
        break
      case 'result':
        seen.push(e.data.sql, String(e.data.rows_count), ...e.data.columns.map((c) => c.name))
        break
      case 'visualization':
        seen.push(e.data.chart.type, ...e.data.chart.y)
        break
      case 'usage':
        seen.push(String(e.data.input_tokens + e.data.output_tokens + e.data.cost))
        break
      case 'error':
        exact<typeof e.data, { code: string; message: string }>(true)
        break
      case 'done':
        exact<typeof e.id, number>(true)
        exact<typeof e.data.finish_reason, 'stop' | 'length' | 'tool_calls' | 'content_filter' | 'error' | 'other' | 'stopped'>(true)
        seen.push(e.data.message_id)
        break
      case 'shutdown':
        exact<typeof e.data, { reason: 'server_shutdown' }>(true)
        break
      case 'title':
        seen.push(e.data.title)
        break
      case 'revoked':
      case 'deleted':
        seen.push(e.data.code, e.data.reason)
        break
      default:
        e satisfies never
    }
  }

  const completion = await authed.v1.chat.completions.post({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Hi' }] })
  if (completion.error) {
    exact<typeof completion.error.value, { error: { message: string; type: string; param: null; code: string | null } }>(true)
    return [completion.error.value.error.message]
  }
  return [...seen, completion.data.choices[0]?.message.content ?? '']
}
`

const WRONG = `import { treaty } from '@elysiajs/eden'
import type { App } from 'hearth-client'

export const misspelt = () =>
  treaty<App>('http://localhost:8787').api.v1.auth.register.post({ username: 'ada', email: 'ada@example.com', pasword: 'correct-horse-battery' })
`

test(
  'a separate strict project installs hearth-client the documented way and type-checks against it',
  () => {
    const client = JSON.parse(readFileSync(join(repo, 'client/package.json'), 'utf8'))
    expect(Bun.semver.satisfies(versionOf('elysia'), client.peerDependencies.elysia)).toBe(true)

    const built = run(['npm', 'run', 'build:client'], repo)
    expect({ code: built.code, out: built.code === 0 ? '' : built.out }).toEqual({ code: 0, out: '' })

    writeFileSync(join(frontend, 'package.json'), JSON.stringify({ name: 'frontend', private: true, type: 'module' }))
    writeFileSync(join(frontend, '.npmrc'), 'install-links=true\n')
    writeFileSync(join(frontend, 'tsconfig.json'), JSON.stringify(TSCONFIG, null, 2))
    mkdirSync(join(frontend, 'src'))
    writeFileSync(join(frontend, 'src/hearth.ts'), USES)
    writeFileSync(join(frontend, 'src/wrong.ts'), WRONG)

    // the versions Hearth itself is built with (already in npm's cache after `npm ci`)
    const installed = run(['npm', 'install', '--prefer-offline', '--no-audit', '--no-fund', join(repo, 'client'), `@elysiajs/eden@${versionOf('@elysiajs/eden')}`, `elysia@${versionOf('elysia')}`], frontend)
    expect({ code: installed.code, out: installed.code === 0 ? '' : installed.out }).toEqual({ code: 0, out: '' })
    // a copy, not a link, so its `elysia` is the frontend's one and only copy
    expect(lstatSync(join(frontend, 'node_modules/hearth-client')).isSymbolicLink()).toBe(false)
    expect(existsSync(join(frontend, 'node_modules/hearth-client/node_modules'))).toBe(false)

    const tsc = join(repo, 'node_modules/.bin/tsc')
    const checked = run([tsc, '-p', frontend], frontend)
    const wrongLine = WRONG.split('\n').findIndex((l) => l.includes('pasword')) + 1
    expect(errorsOf(checked.out).map((e) => ({ ...e, message: e.message.slice(0, 80) }))).toEqual([
      { file: 'src/wrong.ts', line: wrongLine, code: 'TS2561', message: expect.stringContaining("'pasword' does not exist") },
    ])

    // nothing wrong inside the package's own declaration, even when libraries are checked
    const strictLibs = run([tsc, '-p', frontend, '--skipLibCheck', 'false'], frontend)
    expect(errorsOf(strictLibs.out).filter((e) => e.file.includes('hearth-client'))).toEqual([])
  },
  240_000,
)
