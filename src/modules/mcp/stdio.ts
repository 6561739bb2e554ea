/**
 * @module The stdio transport of MCP servers. The SDK's StdioClientTransport gives the child HOME,
 * LOGNAME, PATH, SHELL, TERM and USER from Hearth's own environment and kills only the child, not
 * what the child started (an `npx` wrapper's node, a `uvx` wrapper's python); this one spawns the
 * command itself: never through a shell (metacharacters are literal arguments), in its own process
 * group (setsid), with exactly the environment it is given, reading JSON-RPC lines from stdout.
 */
import { deserializeMessage, serializeMessage, type JSONRPCMessage, type Transport } from '@modelcontextprotocol/client'
import type { Subprocess } from 'bun'

export interface StdioCommand {
  command: string
  args: string[]
  /** the child's whole environment */
  env: Record<string, string>
}

/** A line longer than this on stdout is not a message a server could mean: the process is stopped. */
const MAX_LINE_CHARS = 32 * 1024 * 1024
/** what is kept of stderr, for the log */
const STDERR_TAIL = 4096
/** how long a process gets after SIGTERM before SIGKILL */
const KILL_GRACE_MS = 2000

export class ProcessTransport implements Transport {
  onclose?: () => void
  onerror?: (error: Error) => void
  onmessage?: (message: JSONRPCMessage) => void

  /** lines on stdout that were not JSON-RPC messages */
  garbageLines = 0
  /** the end of what the process wrote to stderr */
  stderrTail = ''
  /** how it ended: its exit code, or the signal that killed it; undefined while it runs */
  exit: { code: number | null; signal: string | null } | undefined
  /** why it could not be started (ENOENT, EACCES) */
  spawnError: Error | undefined

  private proc: Subprocess<'pipe', 'pipe', 'pipe'> | undefined
  private exited: Promise<void> | undefined
  private closed = false

  constructor(private readonly spec: StdioCommand) {}

  get pid(): number | undefined {
    return this.proc?.pid
  }

  async start(): Promise<void> {
    const { promise, resolve } = Promise.withResolvers<void>()
    try {
      this.proc = Bun.spawn([this.spec.command, ...this.spec.args], {
        env: this.spec.env,
        stdin: 'pipe',
        stdout: 'pipe',
        stderr: 'pipe',
        detached: true,
        onExit: (_p, code, signal) => {
          this.exit = { code, signal: signal === null ? null : String(signal) }
          resolve()
        },
      })
    } catch (error) {
      this.spawnError = error as Error
      throw error
    }
    this.exited = promise.then(() => this.finish())
    void this.readStdout(this.proc.stdout)
    void this.readStderr(this.proc.stderr)
  }

  async send(message: JSONRPCMessage): Promise<void> {
    const stdin = this.proc?.stdin
    if (!stdin || this.exit) throw new Error('the server process is not running')
    stdin.write(serializeMessage(message))
    await stdin.flush()
  }

  /** Stop the whole process group: stdin closed and SIGTERM, then SIGKILL after a grace period. */
  async close(): Promise<void> {
    const proc = this.proc
    if (!proc || this.exit) return this.finish()
    try {
      proc.stdin.end()
    } catch {}
    this.signalGroup('SIGTERM')
    const gone = await Promise.race([this.exited!.then(() => true), Bun.sleep(KILL_GRACE_MS).then(() => false)])
    if (!gone) {
      this.signalGroup('SIGKILL')
      await this.exited
    }
  }

  /** What went wrong, in words, once the process is gone or failed to start. */
  describeExit(): string | undefined {
    if (this.spawnError) return `could not be started: ${this.spawnError.message}`
    if (!this.exit) return undefined
    return this.exit.signal ? `was killed by ${this.exit.signal}` : `exited with code ${this.exit.code}`
  }

  private signalGroup(signal: 'SIGTERM' | 'SIGKILL') {
    const pid = this.proc?.pid
    if (!pid) return
    try {
      // detached: the child leads its own process group, whose id is its pid
      process.kill(-pid, signal)
    } catch {
      try {
        this.proc?.kill(signal)
      } catch {}
    }
  }

  private finish() {
    if (this.closed) return
    this.closed = true
    // what the server started and left behind goes with it
    this.signalGroup('SIGKILL')
    this.onclose?.()
  }

  private async readStdout(stream: ReadableStream<Uint8Array>) {
    const decoder = new TextDecoder()
    // the start of a line not ended yet, in pieces: a long line is never searched or copied twice
    let pieces: string[] = []
    let pendingLength = 0
    try {
      for await (const chunk of chunksOf(stream)) {
        let text = decoder.decode(chunk, { stream: true })
        for (let newline = text.indexOf('\n'); newline !== -1; newline = text.indexOf('\n')) {
          pieces.push(text.slice(0, newline))
          this.receive(pieces.join(''))
          pieces = []
          pendingLength = 0
          text = text.slice(newline + 1)
        }
        if (text) pieces.push(text)
        pendingLength += text.length
        if (pendingLength > MAX_LINE_CHARS) {
          this.garbageLines++
          this.onerror?.(new Error(`the server wrote a line longer than ${MAX_LINE_CHARS} characters`))
          void this.close()
          return
        }
      }
    } catch {
      // the process went away mid-read
    }
  }

  private receive(line: string) {
    const text = line.trim()
    if (!text) return
    let message: JSONRPCMessage
    try {
      message = deserializeMessage(text)
    } catch {
      // a log line on stdout, or worse: not ours to act on, but counted for the error message
      this.garbageLines++
      return
    }
    this.onmessage?.(message)
  }

  private async readStderr(stream: ReadableStream<Uint8Array>) {
    const decoder = new TextDecoder()
    try {
      for await (const chunk of chunksOf(stream)) this.stderrTail = (this.stderrTail + decoder.decode(chunk, { stream: true })).slice(-STDERR_TAIL)
    } catch {}
  }
}

async function* chunksOf(stream: ReadableStream<Uint8Array>) {
  const reader = stream.getReader()
  for (;;) {
    const { done, value } = await reader.read()
    if (done) return
    yield value
  }
}
