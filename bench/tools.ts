/**
 * @module `npm run bench:tools`: an MCP tool call through Hearth against the same call made directly,
 * in one run. Hearth (`bun src/index.ts`, a fresh data dir) has one global stdio MCP server, the real
 * server-everything (`node …/dist/index.js stdio`); the baseline is the MCP SDK's own client
 * (@modelcontextprotocol/client with its StdioClientTransport) in this process, talking to a process of
 * the same server. Both call `echo { message }`.
 *
 * Part 1, added latency: BENCH_TOOLS_CALLS sequential calls per target (after a warm-up), in
 * BENCH_TOOLS_ROUNDS interleaved rounds (direct, Hearth; Hearth, direct; …) so a noisy moment hits both:
 * `POST /api/v1/tools/call { tool: "everything__echo" }` with a Bearer token over one keep-alive
 * connection, against `client.callTool()`. The added p50 is Hearth's p50 minus the direct one: the HTTP
 * hop, auth, the tool lookup and argument check, the call through the connection manager and the log row.
 *
 * Part 2, concurrency: BENCH_TOOLS_BATCHES batches of 200 calls at once per target; every answer must be
 * a 200 with the echoed text, and Hearth must have served them all from one server process (its children
 * running server-everything, counted in /proc).
 *
 * Prints one table and the goal lines (added p50 ≤ 1 ms; 200 concurrent calls, one process, no error).
 * Exit code: 0 whatever the goals say; 1 when the harness broke or an answer was wrong; 2 for a bad
 * setting. See bench/README.md.
 */
import { Client } from '@modelcontextprotocol/client'
import { StdioClientTransport } from '@modelcontextprotocol/client/stdio'
import { readdirSync, readFileSync } from 'node:fs'
import { arch, cpus, loadavg, platform } from 'node:os'
import { join } from 'node:path'
import { envInteger, errorMessage, formatMs, hardStop, postJson, renderTable, runAsScript, samplePercentile, setupTokenIn, startHearthServer } from './lib.ts'

const root = join(import.meta.dir, '..')
const EVERYTHING = join(root, 'node_modules/@modelcontextprotocol/server-everything/dist/index.js')
const NODE = Bun.which('node')
const BENCH_USER = { username: 'bench_user', email: 'bench@example.com', password: 'bench-password-1' }
const SERVER = 'everything'
const TOOL = `${SERVER}__echo`
const CONCURRENCY = 200
const WARMUP_CALLS = 300
const GOAL_ADDED_P50_MS = 1

const DIRECT = 'direct: SDK client → stdio echo'
const HEARTH = 'Hearth POST /api/v1/tools/call → stdio echo'

function progress(text: string): void {
  process.stderr.write(`bench tools: ${text}\n`)
}

/** The processes whose parent is `pid` and whose command line names server-everything. */
function everythingChildren(pid: number): number[] {
  const found: number[] = []
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8')
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])
      if (ppid === pid && readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes('server-everything')) found.push(Number(entry))
    } catch {
      // gone meanwhile
    }
  }
  return found
}

interface Target {
  name: string
  /** one call of echo with `message`; resolves to the echoed text, rejects on any failure */
  call(message: string): Promise<string>
}

async function sequential(target: Target, calls: number, samples: number[]): Promise<void> {
  for (let i = 0; i < calls; i++) {
    const message = `seq-${i}`
    const started = performance.now()
    const text = await target.call(message)
    samples.push(performance.now() - started)
    if (text !== `Echo: ${message}`) throw new Error(`${target.name} answered ${JSON.stringify(text.slice(0, 100))}`)
  }
}

/** `batches` batches of CONCURRENCY calls at once: per-call latencies and failures. */
async function concurrent(target: Target, batches: number): Promise<{ samples: number[]; errors: string[]; seconds: number }> {
  const samples: number[] = []
  const errors: string[] = []
  const started = performance.now()
  for (let b = 0; b < batches; b++) {
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async (_, i) => {
        const message = `c-${b}-${i}`
        const t0 = performance.now()
        try {
          const text = await target.call(message)
          if (text !== `Echo: ${message}`) errors.push(`wrong answer ${JSON.stringify(text.slice(0, 80))}`)
        } catch (error) {
          errors.push(errorMessage(error))
        }
        samples.push(performance.now() - t0)
      }),
    )
  }
  return { samples, errors, seconds: (performance.now() - started) / 1000 }
}

export async function runToolsBench(): Promise<number> {
  const calls = envInteger('BENCH_TOOLS_CALLS', 2000, 10, 1_000_000)
  const rounds = envInteger('BENCH_TOOLS_ROUNDS', 4, 1, 100)
  const batches = envInteger('BENCH_TOOLS_BATCHES', 10, 1, 10_000)
  for (const setting of [calls, rounds, batches]) if (setting instanceof Error) return (process.stderr.write(`bench tools: ${setting.message}\n`), 2)
  if (!NODE) return (process.stderr.write('bench tools: node is not on PATH (server-everything runs under node)\n'), 1)
  const perRound = Math.ceil((calls as number) / (rounds as number))
  const timer = hardStop('bench tools', 15 * 60_000)

  progress('starting Hearth and the direct client')
  const hearth = await startHearthServer({
    root,
    prefix: 'hearth-bench-tools-',
    setUp: async (url, dataDir) => {
      const { tokens } = await postJson<{ tokens: { access_token: string } }>(url, '/api/v1/auth/register', { ...BENCH_USER, setup_token: setupTokenIn(dataDir) }, 201)
      const token = tokens.access_token
      await postJson(url, '/api/v1/mcp/servers', { name: SERVER, command: NODE, args: [EVERYTHING, 'stdio'] }, 201, token)
      return { token }
    },
  })
  const client = new Client({ name: 'bench-direct', version: '0' }, { capabilities: {} })
  try {
    await client.connect(new StdioClientTransport({ command: NODE!, args: [EVERYTHING, 'stdio'], stderr: 'ignore' }))
    const direct: Target = {
      name: DIRECT,
      async call(message) {
        const result = await client.callTool({ name: 'echo', arguments: { message } })
        return (result.content as { text: string }[])[0]!.text
      },
    }
    const body = (message: string) => JSON.stringify({ tool: TOOL, arguments: { message } })
    const viaHearth: Target = {
      name: HEARTH,
      async call(message) {
        const res = await fetch(`${hearth.server.url}/api/v1/tools/call`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${hearth.value.token}` }, body: body(message) })
        const answer = (await res.json()) as { result?: { content: { text: string }[] }; is_error?: boolean; detail?: string }
        if (res.status !== 200 || answer.is_error) throw new Error(`${res.status} ${answer.detail ?? JSON.stringify(answer).slice(0, 200)}`)
        return answer.result!.content[0]!.text
      },
    }

    progress(`warm-up: ${WARMUP_CALLS} calls each`)
    await sequential(direct, WARMUP_CALLS, [])
    await sequential(viaHearth, WARMUP_CALLS, [])

    const samples = new Map<string, number[]>([[DIRECT, []], [HEARTH, []]])
    for (let r = 0; r < (rounds as number); r++) {
      const order = r % 2 === 0 ? [direct, viaHearth] : [viaHearth, direct]
      for (const target of order) await sequential(target, perRound, samples.get(target.name)!)
      progress(`round ${r + 1}/${rounds}: ${perRound} sequential calls each`)
    }

    progress(`${batches} batches of ${CONCURRENCY} concurrent calls each`)
    const directLoad = await concurrent(direct, batches as number)
    const hearthLoad = await concurrent(viaHearth, batches as number)
    const processes = everythingChildren(hearth.server.pid)

    const p = (values: number[], q: number) => samplePercentile(values, q)
    const directP50 = p(samples.get(DIRECT)!, 50)!
    const hearthP50 = p(samples.get(HEARTH)!, 50)!
    const added = hearthP50 - directP50
    const row = (name: string, values: number[], extra: string[]) => [name, String(values.length), formatMs(p(values, 50)), formatMs(p(values, 99)), ...extra]
    const table = renderTable(
      ['target', 'calls', 'p50 ms', 'p99 ms', 'calls/s', 'errors', 'notes'],
      [
        row(`${DIRECT}, sequential`, samples.get(DIRECT)!, ['-', '0', '']),
        row(`${HEARTH}, sequential`, samples.get(HEARTH)!, ['-', '0', `added p50 ${formatMs(added)} ms`]),
        row(`${DIRECT}, ${CONCURRENCY} at once`, directLoad.samples, [Math.round(directLoad.samples.length / directLoad.seconds).toLocaleString('en-US'), String(directLoad.errors.length), '']),
        row(`${HEARTH}, ${CONCURRENCY} at once`, hearthLoad.samples, [Math.round(hearthLoad.samples.length / hearthLoad.seconds).toLocaleString('en-US'), String(hearthLoad.errors.length), `server processes: ${processes.length}`]),
      ],
      new Set([1, 2, 3, 4, 5]),
    )
    console.log(`\nMCP tool calls — ${platform()} ${arch()}, ${cpus().length} CPUs, load ${loadavg().map((l) => l.toFixed(2)).join(' ')}, Bun ${Bun.version}, node ${Bun.spawnSync([NODE!, '--version']).stdout.toString().trim()}\n`)
    console.log(table)
    const met = (ok: boolean) => (ok ? 'met' : 'MISSED')
    console.log(`\ngoal: added p50 of POST /tools/call over the SDK client ≤ ${GOAL_ADDED_P50_MS} ms — ${formatMs(added)} ms: ${met(added <= GOAL_ADDED_P50_MS)}`)
    console.log(`goal: ${CONCURRENCY} concurrent calls share one process with no errors — ${processes.length} process${processes.length === 1 ? '' : 'es'}, ${hearthLoad.errors.length} errors: ${met(processes.length === 1 && hearthLoad.errors.length === 0)}`)
    for (const error of [...new Set(hearthLoad.errors)].slice(0, 5)) console.log(`  Hearth error: ${error}`)
    return 0
  } finally {
    clearTimeout(timer)
    await client.close().catch(() => {})
    await hearth.stop()
  }
}

if (import.meta.main) await runAsScript('bench tools', runToolsBench)
