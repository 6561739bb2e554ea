/**
 * @module A client for one ComfyUI server, knowing neither HTTP routes of Hearth nor tasks: `POST
 * /prompt`, `GET /history/{id}`, `GET /queue`, `POST /queue { delete }`, `POST /interrupt`, `GET
 * /view`, and the `/ws?clientId=` WebSocket whose JSON frames report a prompt's progress (binary
 * frames — previews — are dropped).
 *
 * Every HTTP request goes through the fetch it is given (the outbound guard's, so only http(s) and
 * redirects are never followed), with a timeout, and sends no `Origin` header: ComfyUI answers 403
 * on loopback when the Host and Origin host names differ, and neither Bun's fetch nor Bun's
 * WebSocket sends one unless told to (test/workflow-runs.test.ts checks the recorded headers). The
 * service URL may carry a path (a reverse proxy's prefix): routes are appended to it.
 */

/** Why a call to the engine failed. `retryable`: the engine could not be reached or failed (5xx), so trying later may work. */
export class ComfyError extends Error {
  override name = 'ComfyError'
  constructor(
    message: string,
    readonly retryable: boolean,
  ) {
    super(message)
  }
}

/** A file an output node wrote, as ComfyUI names it. */
export interface ComfyFile {
  filename: string
  subfolder: string
  type: string
}

/** One `GET /history/{id}` entry. */
export interface HistoryEntry {
  outputs?: Record<string, Record<string, unknown>>
  status?: { status_str?: string; completed?: boolean; messages?: [string, Record<string, unknown>][] }
}

/** A JSON frame of the WebSocket: `{ type, data }`. */
export interface ComfyFrame {
  type: string
  data: Record<string, any>
}

const MAX_TEXT = 200

/** An engine's text, one line and short, for a task's error. */
export const clip = (s: unknown, max = MAX_TEXT): string => {
  const text = String(s ?? '').replace(/[\u0000-\u001f\u007f\u202a-\u202e\u2066-\u2069]+/g, ' ').replace(/\s+/g, ' ').trim()
  return text.length > max ? `${text.slice(0, max - 1)}…` : text
}

/** The files of one output node's `output` (`images`, `gifs`, `audio`, … — any list of `{ filename, subfolder, type }`). */
export function filesOf(output: Record<string, unknown> | undefined): ComfyFile[] {
  const files: ComfyFile[] = []
  for (const value of Object.values(output ?? {})) {
    if (!Array.isArray(value)) continue
    for (const f of value) {
      if (f && typeof f === 'object' && typeof f.filename === 'string' && f.filename && (f.type === 'output' || f.type === 'temp'))
        files.push({ filename: f.filename, subfolder: typeof f.subfolder === 'string' ? f.subfolder : '', type: f.type })
    }
  }
  return files
}

/** ComfyUI's 400 for a prompt it will not queue, summarised: the error's message and each node's first errors. */
export function refusalOf(body: any): string {
  const error = body?.error
  const head = typeof error === 'string' ? error : [error?.message, error?.details].filter((s) => typeof s === 'string' && s).join(': ')
  const nodes = body?.node_errors && typeof body.node_errors === 'object' && !Array.isArray(body.node_errors) ? Object.entries(body.node_errors as Record<string, any>) : []
  const parts = nodes.slice(0, 5).map(([id, n]) => {
    const errs = Array.isArray(n?.errors) ? n.errors.slice(0, 3).map((e: any) => [e?.message, e?.details].filter(Boolean).join(': ')) : []
    return `node ${id}${n?.class_type ? ` (${n.class_type})` : ''}: ${errs.join('; ') || 'invalid'}`
  })
  return clip([head || 'The prompt is invalid', ...parts].join(' — '), 1000)
}

export interface ComfyClientOptions {
  /** the service's URL, `http(s)://host:port[/prefix]` */
  baseUrl: string
  /** what sends the requests: the outbound guard's fetch */
  fetch: typeof fetch
  /** how long one request (or opening the WebSocket) may take */
  timeoutMs: number
  /** the service's name, for messages */
  name: string
}

export function createComfyClient(opts: ComfyClientOptions) {
  const base = opts.baseUrl.replace(/\/+$/, '')
  const who = `The workflow service '${opts.name}'`
  const seconds = `${Math.round(opts.timeoutMs / 100) / 10} s`

  /** A request with the timeout; `read` gets the body within the same timeout. */
  async function call<T>(method: string, path: string, body: unknown, read: (res: Response) => Promise<T>, signal?: AbortSignal): Promise<T> {
    const timeout = AbortSignal.timeout(opts.timeoutMs)
    const both = signal ? AbortSignal.any([timeout, signal]) : timeout
    try {
      const res = await opts.fetch(base + path, {
        method,
        headers: body === undefined ? { accept: 'application/json' } : { accept: 'application/json', 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
        redirect: 'manual',
        signal: both,
      })
      return await read(res)
    } catch (error) {
      if (error instanceof ComfyError) throw error
      if (signal?.aborted) throw signal.reason
      if (timeout.aborted) throw new ComfyError(`${who} did not answer within ${seconds}`, true)
      // the outbound guard's refusal (an AppError) or a network failure
      const detail = (error as { detail?: string }).detail ?? (error as { code?: string }).code ?? (error as Error).message
      throw new ComfyError(`${who} could not be reached: ${clip(detail)}`, !(error as { detail?: string }).detail)
    }
  }

  /** A non-2xx answer as a ComfyError: redirects are not followed (not retryable), 5xx may pass. */
  async function failure(res: Response, what: string): Promise<ComfyError> {
    if (res.status >= 300 && res.status < 400) return new ComfyError(`${who} answered ${what} with a redirect (${res.status}); redirects are not followed — check the service URL`, false)
    const text = clip(await res.text().catch(() => ''))
    return new ComfyError(`${who} answered ${what} with ${res.status}${text ? `: ${text}` : ''}`, res.status >= 500 || res.status === 429)
  }

  const json = (what: string) => async (res: Response) => {
    if (!res.ok) throw await failure(res, what)
    try {
      return (await res.json()) as any
    } catch {
      throw new ComfyError(`${who} answered ${what} with something that is not JSON`, true)
    }
  }
  const ok = (what: string) => async (res: Response) => {
    if (!res.ok) throw await failure(res, what)
    await res.body?.cancel().catch(() => {})
  }

  return {
    name: opts.name,

    /** Queue a prompt for `clientId`'s socket; `promptId` is the id to use where the engine accepts one (newer ComfyUI). A refused prompt: a ComfyError with its node errors, not retryable. */
    async queuePrompt(prompt: unknown, clientId: string, promptId: string): Promise<{ prompt_id: string; number: number | null }> {
      return call('POST', '/prompt', { prompt, client_id: clientId, prompt_id: promptId }, async (res) => {
        if (res.status === 400) {
          const body = await res.json().catch(() => null)
          throw new ComfyError(`ComfyUI refused the prompt: ${refusalOf(body)}`, false)
        }
        const b = await json('POST /prompt')(res)
        if (typeof b?.prompt_id !== 'string' || !b.prompt_id) throw new ComfyError(`${who} answered POST /prompt without a prompt_id`, false)
        return { prompt_id: b.prompt_id, number: typeof b.number === 'number' ? b.number : null }
      })
    },

    /** The prompt's history entry, or undefined while it has none (queued, running, unknown). */
    async history(promptId: string, signal?: AbortSignal): Promise<HistoryEntry | undefined> {
      const b = await call('GET', `/history/${encodeURIComponent(promptId)}`, undefined, json('GET /history'), signal)
      const entry = b && typeof b === 'object' ? b[promptId] : undefined
      return entry && typeof entry === 'object' ? (entry as HistoryEntry) : undefined
    },

    /** The ids running and waiting. */
    async queue(signal?: AbortSignal): Promise<{ running: string[]; pending: string[] }> {
      const b = await call('GET', '/queue', undefined, json('GET /queue'), signal)
      const ids = (list: unknown) => (Array.isArray(list) ? list.map((e) => (Array.isArray(e) ? String(e[1]) : '')).filter(Boolean) : [])
      return { running: ids(b?.queue_running), pending: ids(b?.queue_pending) }
    },

    /** Stop the running prompt: `{ prompt_id }` makes newer ComfyUI interrupt only that prompt (older ones interrupt whatever runs). */
    interrupt: (promptId: string) => call('POST', '/interrupt', { prompt_id: promptId }, ok('POST /interrupt')),

    /** Take prompts off the queue (ones already running are not affected). */
    deleteFromQueue: (ids: string[]) => call('POST', '/queue', { delete: ids }, ok('POST /queue')),

    /** A file's bytes: the response once its headers are in (the body streams without the timeout). */
    async view(file: ComfyFile, signal?: AbortSignal): Promise<Response> {
      const q = new URLSearchParams({ filename: file.filename, subfolder: file.subfolder, type: file.type })
      const headers = new AbortController()
      const timer = setTimeout(() => headers.abort(), opts.timeoutMs)
      const both = signal ? AbortSignal.any([headers.signal, signal]) : headers.signal
      try {
        const res = await opts.fetch(`${base}/view?${q}`, { redirect: 'manual', signal: both })
        if (!res.ok) throw await failure(res, `GET /view for ${clip(file.filename, 80)}`)
        return res
      } catch (error) {
        if (error instanceof ComfyError) throw error
        if (signal?.aborted) throw signal.reason
        if (headers.signal.aborted) throw new ComfyError(`${who} did not send ${clip(file.filename, 80)} within ${seconds}`, true)
        throw new ComfyError(`${who} could not be reached: ${clip((error as { code?: string }).code ?? (error as Error).message)}`, true)
      } finally {
        clearTimeout(timer)
      }
    },

    /** Open `/ws?clientId=`; resolves once it is open (a ComfyError when it cannot be within the timeout). */
    connect: (clientId: string) => ComfySocket.open(`${base.replace(/^http/i, 'ws')}/ws?clientId=${encodeURIComponent(clientId)}`, opts.timeoutMs, who),
  }
}

export type ComfyClient = ReturnType<typeof createComfyClient>

/** The engine's WebSocket as a queue of JSON frames. */
export class ComfySocket {
  private frames: ComfyFrame[] = []
  private waiter: (() => void) | undefined
  closed = false

  private constructor(private ws: WebSocket) {
    ws.binaryType = 'arraybuffer'
    ws.addEventListener('message', (e) => {
      // binary frames are previews (a 4-byte type, then an image): not needed
      if (typeof e.data !== 'string') return
      try {
        const f = JSON.parse(e.data)
        if (f && typeof f.type === 'string') this.frames.push({ type: f.type, data: f.data && typeof f.data === 'object' ? f.data : {} })
      } catch {
        return
      }
      this.waiter?.()
    })
    ws.addEventListener('close', () => {
      this.closed = true
      this.waiter?.()
    })
  }

  static open(url: string, timeoutMs: number, who: string): Promise<ComfySocket> {
    return new Promise((resolve, reject) => {
      let ws: WebSocket
      try {
        ws = new WebSocket(url)
      } catch (error) {
        return reject(new ComfyError(`${who}'s WebSocket could not be opened: ${clip((error as Error).message)}`, false))
      }
      const socket = new ComfySocket(ws)
      const timer = setTimeout(() => {
        ws.close()
        reject(new ComfyError(`${who} did not open its WebSocket within ${Math.round(timeoutMs / 100) / 10} s`, true))
      }, timeoutMs)
      ws.addEventListener('open', () => (clearTimeout(timer), resolve(socket)), { once: true })
      ws.addEventListener('error', () => (clearTimeout(timer), reject(new ComfyError(`${who}'s WebSocket could not be opened`, true))), { once: true })
    })
  }

  /** The next frame; `timeout` after `ms` without one; `closed` once the socket closed and every frame was read; `aborted` when `signal` aborts. */
  next(ms: number, signal: AbortSignal): Promise<ComfyFrame | 'timeout' | 'closed' | 'aborted'> {
    const f = this.frames.shift()
    if (f) return Promise.resolve(f)
    if (signal.aborted) return Promise.resolve('aborted')
    if (this.closed) return Promise.resolve('closed')
    return new Promise((resolve) => {
      const done = (v: ComfyFrame | 'timeout' | 'closed' | 'aborted') => {
        clearTimeout(timer)
        signal.removeEventListener('abort', onAbort)
        this.waiter = undefined
        resolve(v)
      }
      const onAbort = () => done('aborted')
      const timer = setTimeout(() => done('timeout'), Math.max(0, ms))
      signal.addEventListener('abort', onAbort, { once: true })
      this.waiter = () => {
        const next = this.frames.shift()
        if (next) done(next)
        else if (this.closed) done('closed')
      }
    })
  }

  close() {
    this.closed = true
    try {
      this.ws.close()
    } catch {}
  }
}
