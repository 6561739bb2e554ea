/**
 * A fake ComfyUI server speaking ComfyUI's real HTTP and WebSocket protocol on one loopback Bun.serve,
 * for tests and benchmarks. Every route also answers under `/api/…`, as ComfyUI's do.
 *
 *   GET  /system_stats            `{ system: { os, ram_total, ram_free, comfyui_version, python_version,
 *                                 pytorch_version, embedded_python, argv }, devices: [{ name, type, index,
 *                                 vram_total, vram_free, torch_vram_total, torch_vram_free }] }`
 *   POST /prompt { prompt, client_id?, prompt_id?, extra_data? }
 *                                 → `{ prompt_id, number, node_errors: {} }`, or 400
 *                                 `{ error: { type, message, details, extra_info }, node_errors }` (the shapes of
 *                                 ComfyUI's `execution.validate_prompt`: `no_prompt`, `invalid_prompt` for a node
 *                                 without `class_type` or with an unknown one, `prompt_no_outputs`,
 *                                 `prompt_outputs_failed_validation` with per-node `errors`)
 *   GET  /ws?clientId=ID          WebSocket. On connect `{"type":"status","data":{"status":{"exec_info":
 *                                 {"queue_remaining":N}},"sid":ID}}`; every frame is `{ type, data }`. A prompt's
 *                                 frames go to the socket of its `client_id` (status frames to every socket):
 *                                 execution_start, execution_cached, then per node executing → progress (nodes with
 *                                 a `steps` input; one BINARY preview frame after the first progress, as ComfyUI
 *                                 sends: 4-byte event 1, 4-byte format 2 = PNG, the image) → executed (output nodes),
 *                                 then execution_success, or execution_error / execution_interrupted, and always
 *                                 `executing { node: null, prompt_id }` last.
 *   GET  /history/{prompt_id}     `{}` until it ran, then `{ [id]: { prompt: [number, id, prompt, extra_data,
 *                                 outputs_to_execute], outputs: { node: { images } }, status: { status_str:
 *                                 "success"|"error", completed, messages: [[type, data], …] }, meta } }`
 *   GET  /view?filename&subfolder&type   the image's PNG bytes (`image/png`), 404 for anything else
 *   POST /interrupt { prompt_id? }  recorded; the running prompt stops with `execution_interrupted` (with a
 *                                 `prompt_id`, as newer ComfyUI does, only when that prompt is the one running)
 *   GET  /queue                   `{ queue_running: [[number, id, prompt, extra_data, outputs]], queue_pending }`
 *   POST /queue { delete?: [ids], clear? }   recorded; removes pending prompts
 *
 * Prompts execute one at a time, in queue order; nodes execute after the nodes their link inputs
 * (`["id", slot]`) come from, otherwise in key order. A node is an
 * output node when its class_type is `SaveImage` or `PreviewImage` (type `temp`); each produces
 * `images` PNG files named `<filename_prefix>_0000N_.png` (SaveImage, default prefix `ComfyUI`) or
 * `ComfyUI_temp_<n>_0000N_.png` (PreviewImage). A class_type starting with `Missing` is an unknown node.
 *
 * The scenario is chosen by the prompt itself, so production code needs no test hooks: a node with
 * `class_type: "FakeScenario"` (it is not executed and never an output) whose inputs may hold
 *   steps: N          progress steps of each node with a `steps` input (default: that input, capped at 20)
 *   delay_ms: MS      wait before every frame after execution_start (default 0)
 *   images: K         images per output node (default 1)
 *   cached: [ids]     nodes reported in execution_cached and not executed
 *   error_node: ID    that node fails at run time: execution_error { prompt_id, node_id, node_type, executed,
 *                     exception_message, exception_type, traceback, current_inputs, current_outputs, timestamp }
 *   error_message: S  its exception_message (default "Fake failure at node ID")
 *   invalid_node: ID  POST /prompt answers 400 prompt_outputs_failed_validation naming that node
 *   drop_socket: true the client's socket is closed by the server after the first progress frame (once per prompt);
 *                     frames sent while it is away are lost, as with a real dropped connection
 *   hang: true        the prompt starts (execution_start, executing its first node) and then waits, silent,
 *                     until /interrupt or stop()
 *
 * Whole-server behaviour (`behaviour` at start, or set `fake.behaviour` later, e.g. online → offline):
 *   'normal'    as above
 *   'hang'      no HTTP request (WebSocket upgrades too) is ever answered; stop() ends them
 *   'error'     every request gets 500 with a text body
 *   'redirect'  every request gets 302 to the same path on 127.0.0.1:9 (a client must not follow it)
 *
 * Every HTTP request, WebSocket upgrades included, is recorded with its lower-cased headers, so tests can
 * check that no `Origin` header is sent (real ComfyUI answers 403 on loopback when Host and Origin differ,
 * and so does the fake).
 */

import { deflateSync } from 'node:zlib'
import type { ServerWebSocket } from 'bun'

export type ComfyRequest = { method: string; path: string; headers: Record<string, string>; body: unknown; at: number }
export type ComfyImage = { filename: string; subfolder: string; type: 'output' | 'temp' }
export type ComfyPrompt = {
  prompt_id: string
  number: number
  client_id?: string
  /** the API-format prompt exactly as received */
  prompt: Record<string, any>
  extra_data: Record<string, unknown>
  status: 'pending' | 'running' | 'success' | 'error' | 'interrupted' | 'deleted'
}
export type ComfySocket = { clientId: string; headers: Record<string, string>; open: boolean; frames: unknown[] }
export type Behaviour = 'normal' | 'hang' | 'error' | 'redirect'
export type FakeComfy = {
  url: string
  /** every HTTP request in arrival order (WebSocket upgrades included) */
  requests: ComfyRequest[]
  /** every prompt accepted by POST /prompt, in order */
  prompts: ComfyPrompt[]
  /** times POST /interrupt was called (the request bodies) */
  interrupts: unknown[]
  /** the `delete` lists of every POST /queue */
  queueDeletes: string[][]
  /** every WebSocket that connected, with the frames sent to it (JSON frames parsed; binary as `{ binary: n }`) */
  sockets: ComfySocket[]
  /** the bytes /view serves, by filename */
  images: Map<string, Uint8Array<ArrayBuffer>>
  behaviour: Behaviour
  stop(): Promise<void>
}

type Scenario = {
  steps?: number
  delay: number
  images: number
  cached: string[]
  error_node?: string
  error_message?: string
  invalid_node?: string
  hang: boolean
  drop_socket: boolean
}

const OUTPUT_NODES: Record<string, 'output' | 'temp'> = { SaveImage: 'output', PreviewImage: 'temp' }

// ---- PNG ---------------------------------------------------------------------------------------

const CRC_TABLE = (() => {
  const t = new Uint32Array(256)
  for (let n = 0; n < 256; n++) {
    let c = n
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1
    t[n] = c >>> 0
  }
  return t
})()
function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff
  for (const b of bytes) c = CRC_TABLE[(c ^ b) & 0xff]! ^ (c >>> 8)
  return (c ^ 0xffffffff) >>> 0
}
function chunk(type: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length)
  const view = new DataView(out.buffer)
  view.setUint32(0, data.length)
  out.set(new TextEncoder().encode(type), 4)
  out.set(data, 8)
  view.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)))
  return out
}
/** A valid `size`×`size` RGB PNG filled with one colour derived from `seed` (so images differ). */
export function makePng(seed: number, size = 8): Uint8Array<ArrayBuffer> {
  const ihdr = new Uint8Array(13)
  const v = new DataView(ihdr.buffer)
  v.setUint32(0, size)
  v.setUint32(4, size)
  ihdr.set([8, 2, 0, 0, 0], 8) // 8-bit, truecolour, deflate, no filter, no interlace
  const rgb = [(seed * 67) & 0xff, (seed * 131 + 40) & 0xff, (seed * 197 + 90) & 0xff]
  const raw = new Uint8Array(size * (1 + size * 3))
  for (let y = 0; y < size; y++) {
    const row = y * (1 + size * 3)
    for (let x = 0; x < size; x++) raw.set(rgb, row + 1 + x * 3)
  }
  const parts = [new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr),
    chunk('IDAT', new Uint8Array(deflateSync(raw))), chunk('IEND', new Uint8Array())]
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
  let at = 0
  for (const p of parts) (out.set(p, at), (at += p.length))
  return out
}

// ---- helpers -----------------------------------------------------------------------------------

const json = (body: unknown, status = 200) => Response.json(body, { status })
const sleep = (ms: number, signal: AbortSignal) => new Promise<void>(resolve => {
  if (signal.aborted) return resolve()
  const t = setTimeout(resolve, ms)
  signal.addEventListener('abort', () => (clearTimeout(t), resolve()), { once: true })
})
const promptError = (type: string, message: string, details = '', node_errors: unknown = {}) =>
  json({ error: { type, message, details, extra_info: {} }, node_errors }, 400)

function scenarioOf(prompt: Record<string, any>): Scenario {
  const s: Scenario = { delay: 0, images: 1, cached: [], hang: false, drop_socket: false }
  for (const node of Object.values(prompt)) {
    if (node?.class_type !== 'FakeScenario') continue
    const i = node.inputs ?? {}
    if (Number.isInteger(i.steps)) s.steps = i.steps
    if (Number.isInteger(i.delay_ms)) s.delay = i.delay_ms
    if (Number.isInteger(i.images)) s.images = i.images
    if (Array.isArray(i.cached)) s.cached = i.cached.map(String)
    if (i.error_node != null) s.error_node = String(i.error_node)
    if (typeof i.error_message === 'string') s.error_message = i.error_message
    if (i.invalid_node != null) s.invalid_node = String(i.invalid_node)
    if (i.hang === true) s.hang = true
    if (i.drop_socket === true) s.drop_socket = true
  }
  return s
}

/** Node ids with every node after the nodes its link inputs (`["id", slot]`) come from. */
function topological(prompt: Record<string, any>): string[] {
  const order: string[] = []
  const seen = new Set<string>()
  const visit = (id: string) => {
    if (seen.has(id) || !(id in prompt)) return
    seen.add(id)
    for (const v of Object.values(prompt[id]?.inputs ?? {}))
      if (Array.isArray(v) && v.length === 2 && typeof v[0] === 'string' && typeof v[1] === 'number') visit(v[0])
    order.push(id)
  }
  for (const id of Object.keys(prompt)) visit(id)
  return order
}

/** ComfyUI's check that a browser on another site is not queueing prompts on a loopback server. */
function originRefused(headers: Record<string, string>): boolean {
  const origin = headers.origin
  const host = headers.host
  if (!origin || !host) return false
  try {
    const o = new URL(origin)
    const h = new URL(`http://${host}`)
    return (o.port ? o.host : o.hostname) !== (o.port ? h.host : h.hostname)
  } catch {
    return true
  }
}

// ---- the server --------------------------------------------------------------------------------

type WsData = { socket: ComfySocket }

export async function startFakeComfy(opts: { port?: number; behaviour?: Behaviour; version?: string } = {}): Promise<FakeComfy> {
  const life = new AbortController()
  const requests: ComfyRequest[] = []
  const prompts: ComfyPrompt[] = []
  const interrupts: unknown[] = []
  const queueDeletes: string[][] = []
  const sockets: ComfySocket[] = []
  const images = new Map<string, Uint8Array<ArrayBuffer>>()
  const history = new Map<string, Record<string, unknown>>()
  const live = new Map<string, ServerWebSocket<WsData>>()
  const pending: ComfyPrompt[] = []
  const outputsOf = new Map<string, string[]>()
  let running: ComfyPrompt | undefined
  const dropped = new Set<string>()
  let interrupted = false
  let wake: (() => void) | undefined
  let number = 0
  let imageSeq = 0
  const fake: FakeComfy = {
    url: '',
    requests, prompts, interrupts, queueDeletes, sockets, images,
    behaviour: opts.behaviour ?? 'normal',
    async stop() {
      life.abort()
      wake?.()
      for (const ws of live.values()) ws.close(1001, 'server stopped')
      await server.stop(true)
    },
  }

  const queueRemaining = () => pending.length + (running ? 1 : 0)
  function sendTo(clientId: string | undefined, type: string, data: unknown) {
    const ws = clientId ? live.get(clientId) : undefined
    if (!ws) return
    ws.data.socket.frames.push({ type, data })
    ws.send(JSON.stringify({ type, data }))
  }
  function broadcastStatus() {
    const status = { exec_info: { queue_remaining: queueRemaining() } }
    for (const ws of live.values()) {
      ws.data.socket.frames.push({ type: 'status', data: { status } })
      ws.send(JSON.stringify({ type: 'status', data: { status } }))
    }
  }
  function sendPreview(clientId: string | undefined) {
    const ws = clientId ? live.get(clientId) : undefined
    if (!ws) return
    const png = makePng(255, 4)
    const frame = new Uint8Array(8 + png.length)
    new DataView(frame.buffer).setUint32(0, 1) // BinaryEventTypes.PREVIEW_IMAGE
    new DataView(frame.buffer).setUint32(4, 2) // PNG
    frame.set(png, 8)
    ws.data.socket.frames.push({ binary: frame.length })
    ws.sendBinary(frame)
  }

  /** Runs one prompt the way ComfyUI's prompt worker does. */
  async function execute(p: ComfyPrompt) {
    const sc = scenarioOf(p.prompt)
    const id = p.prompt_id
    const messages: [string, Record<string, unknown>][] = []
    const outputs: Record<string, { images: ComfyImage[] }> = {}
    const executed: string[] = []
    const emit = async (type: string, data: Record<string, unknown>, wait = true) => {
      if (wait && sc.delay) await sleep(sc.delay, life.signal)
      if (['execution_start', 'execution_cached', 'execution_error', 'execution_interrupted', 'execution_success'].includes(type))
        messages.push([type, data])
      sendTo(p.client_id, type, data)
    }
    let status: 'success' | 'error' | 'interrupted' = 'success'
    await emit('execution_start', { prompt_id: id, timestamp: Date.now() }, false)
    await emit('execution_cached', { nodes: sc.cached, prompt_id: id, timestamp: Date.now() })
    const order = topological(p.prompt).filter(n => p.prompt[n].class_type !== 'FakeScenario' && !sc.cached.includes(n))
    run: for (const nodeId of order) {
      const node = p.prompt[nodeId]
      if (interrupted || life.signal.aborted) { status = 'interrupted'; break }
      await emit('executing', { node: nodeId, display_node: nodeId, prompt_id: id })
      if (sc.hang) {
        await new Promise<void>(resolve => (wake = resolve))
        wake = undefined
        status = 'interrupted'
        break
      }
      const steps = sc.steps ?? (Number.isInteger(node.inputs?.steps) ? Math.min(node.inputs.steps, 20) : 0)
      for (let v = 1; v <= steps; v++) {
        if (interrupted || life.signal.aborted) { status = 'interrupted'; break run }
        await emit('progress', { value: v, max: steps, prompt_id: id, node: nodeId })
        if (v === 1) sendPreview(p.client_id)
        if (v === 1 && sc.drop_socket && !dropped.has(id)) {
          dropped.add(id)
          const ws = p.client_id ? live.get(p.client_id) : undefined
          if (ws) (live.delete(p.client_id!), ws.close(1011, 'dropped by the scenario'))
        }
      }
      if (sc.error_node === nodeId) {
        status = 'error'
        await emit('execution_error', {
          prompt_id: id, node_id: nodeId, node_type: node.class_type, executed: [...executed],
          exception_message: sc.error_message ?? `Fake failure at node ${nodeId}`,
          exception_type: 'RuntimeError',
          traceback: ['Traceback (most recent call last):\n', '  File "execution.py", line 1, in execute\n', 'RuntimeError\n'],
          current_inputs: node.inputs ?? {}, current_outputs: {}, timestamp: Date.now(),
        })
        break
      }
      const kind = OUTPUT_NODES[node.class_type]
      if (kind) {
        const prefix = kind === 'output' ? String(node.inputs?.filename_prefix ?? 'ComfyUI') : `ComfyUI_temp_${id.slice(0, 5)}`
        const list: ComfyImage[] = []
        for (let k = 0; k < sc.images; k++) {
          const filename = `${prefix.replace(/[^\w.-]/g, '_')}_${String(++imageSeq).padStart(5, '0')}_.png`
          images.set(filename, makePng(imageSeq))
          list.push({ filename, subfolder: '', type: kind })
        }
        outputs[nodeId] = { images: list }
        await emit('executed', { node: nodeId, display_node: nodeId, output: { images: list }, prompt_id: id })
      }
      executed.push(nodeId)
    }
    if (status === 'interrupted') {
      const at = order.find(n => !executed.includes(n))
      await emit('execution_interrupted', { prompt_id: id, node_id: at ?? null, node_type: at ? p.prompt[at].class_type : null, executed, timestamp: Date.now() }, false)
    }
    if (status === 'success') await emit('execution_success', { prompt_id: id, timestamp: Date.now() })
    p.status = status
    history.set(id, {
      prompt: [p.number, id, p.prompt, p.extra_data, outputsOf.get(id) ?? []],
      outputs,
      status: { status_str: status === 'success' ? 'success' : 'error', completed: status === 'success', messages },
      meta: Object.fromEntries(Object.keys(outputs).map(n => [n, { node_id: n, display_node: n, parent_node: null, real_node_id: n }])),
    })
    sendTo(p.client_id, 'executing', { node: null, prompt_id: id })
  }

  async function worker() {
    while (!running && pending.length && !life.signal.aborted) {
      running = pending.shift()!
      running.status = 'running'
      interrupted = false
      broadcastStatus()
      try {
        await execute(running)
      } finally {
        running = undefined
        interrupted = false
        broadcastStatus()
      }
    }
  }

  function validate(prompt: unknown): Response | string[] {
    if (!prompt || typeof prompt !== 'object' || Array.isArray(prompt))
      return promptError('invalid_prompt', 'Invalid prompt: prompt must be an object')
    const nodes = prompt as Record<string, any>
    const outputs: string[] = []
    for (const [id, node] of Object.entries(nodes)) {
      if (!node || typeof node !== 'object' || !('class_type' in node))
        return promptError('invalid_prompt', 'Cannot execute because a node is missing the class_type property.', `Node ID '#${id}'`)
      if (typeof node.class_type !== 'string' || node.class_type.startsWith('Missing'))
        return promptError('invalid_prompt', `Cannot execute because node ${node.class_type} does not exist.`, `Node ID '#${id}'`)
      if (OUTPUT_NODES[node.class_type]) outputs.push(id)
    }
    const sc = scenarioOf(nodes)
    if (sc.invalid_node !== undefined) {
      const node = nodes[sc.invalid_node] ?? {}
      const input = Object.keys(node.inputs ?? {})[0] ?? 'ckpt_name'
      const received = node.inputs?.[input] ?? null
      return promptError('prompt_outputs_failed_validation', 'Prompt outputs failed validation', '', {
        [sc.invalid_node]: {
          errors: [{ type: 'value_not_in_list', message: 'Value not in list', details: `${input}: '${received}' not in []`,
            extra_info: { input_name: input, input_config: [[], {}], received_value: received } }],
          dependent_outputs: outputs,
          class_type: node.class_type ?? 'Unknown',
        },
      })
    }
    if (!outputs.length) return promptError('prompt_no_outputs', 'Prompt has no outputs')
    return outputs
  }

  async function handle(req: Request, srv: Bun.Server<WsData>): Promise<Response | undefined> {
    const url = new URL(req.url)
    const path = url.pathname.replace(/^\/api(?=\/)/, '')
    const headers: Record<string, string> = {}
    req.headers.forEach((v, k) => (headers[k.toLowerCase()] = v))
    const raw = req.method === 'GET' || req.method === 'HEAD' ? '' : await req.text()
    let body: unknown = null
    try {
      body = raw ? JSON.parse(raw) : null
    } catch {
      body = raw
    }
    requests.push({ method: req.method, path: url.pathname + url.search, headers, body, at: Date.now() })

    if (fake.behaviour === 'hang') {
      await new Promise<void>(resolve => life.signal.addEventListener('abort', () => resolve(), { once: true }))
      return new Response(null, { status: 503 })
    }
    if (fake.behaviour === 'error') return new Response('500 Internal Server Error\n\nServer got itself in trouble', { status: 500 })
    if (fake.behaviour === 'redirect') return new Response(null, { status: 302, headers: { location: `http://127.0.0.1:9${url.pathname}${url.search}` } })
    if (originRefused(headers)) return new Response(null, { status: 403 })

    if (path === '/ws' && req.method === 'GET') {
      const clientId = url.searchParams.get('clientId') || crypto.randomUUID().replaceAll('-', '')
      const socket: ComfySocket = { clientId, headers, open: false, frames: [] }
      if (srv.upgrade(req, { data: { socket } })) return undefined
      return new Response('Expected a WebSocket request', { status: 400 })
    }
    if (path === '/system_stats' && req.method === 'GET') {
      const gib = 1024 ** 3
      return json({
        system: {
          os: 'posix', ram_total: 32 * gib, ram_free: 20 * gib, comfyui_version: opts.version ?? '0.3.40',
          python_version: '3.12.3 (main, Apr 10 2024, 05:33:47) [GCC 13.2.0]', pytorch_version: '2.5.1+cu124',
          embedded_python: false, argv: ['main.py', '--listen', '127.0.0.1'],
        },
        devices: [{ name: 'cuda:0 NVIDIA GeForce RTX 4090 : cudaMallocAsync', type: 'cuda', index: 0,
          vram_total: 24 * gib, vram_free: 22 * gib, torch_vram_total: 0, torch_vram_free: 0 }],
      })
    }
    if (path === '/prompt' && req.method === 'GET') return json({ exec_info: { queue_remaining: queueRemaining() } })
    if (path === '/prompt' && req.method === 'POST') {
      if (!body || typeof body !== 'object' || Array.isArray(body)) return promptError('no_prompt', 'No prompt provided', 'No prompt provided')
      const b = body as Record<string, any>
      if (!('prompt' in b)) return promptError('no_prompt', 'No prompt provided', 'No prompt provided')
      const valid = validate(b.prompt)
      if (valid instanceof Response) return valid
      const prompt_id = typeof b.prompt_id === 'string' && b.prompt_id ? b.prompt_id : crypto.randomUUID()
      const num = number++
      const extra_data = { ...(b.extra_data ?? {}), ...(b.client_id ? { client_id: b.client_id } : {}) }
      const p: ComfyPrompt = { prompt_id, number: num, client_id: b.client_id, prompt: b.prompt, extra_data, status: 'pending' }
      prompts.push(p)
      pending.push(p)
      outputsOf.set(prompt_id, valid)
      broadcastStatus()
      queueMicrotask(() => void worker())
      return json({ prompt_id, number: num, node_errors: {} })
    }
    const hist = path.match(/^\/history\/(.+)$/)
    if (hist && req.method === 'GET') {
      const id = decodeURIComponent(hist[1]!)
      const h = history.get(id)
      return json(h ? { [id]: h } : {})
    }
    if (path === '/history' && req.method === 'GET') return json(Object.fromEntries(history))
    if (path === '/view' && req.method === 'GET') {
      const filename = url.searchParams.get('filename') ?? ''
      if (!filename) return new Response(null, { status: 404 })
      if (filename.startsWith('/') || filename.includes('..')) return new Response(null, { status: 400 })
      const bytes = images.get(filename)
      if (!bytes || (url.searchParams.get('subfolder') ?? '') !== '') return new Response(null, { status: 404 })
      return new Response(bytes as Uint8Array<ArrayBuffer>, { headers: { 'content-type': 'image/png', 'content-disposition': `filename="${filename}"` } })
    }
    if (path === '/interrupt' && req.method === 'POST') {
      interrupts.push(body)
      // newer ComfyUI: a body naming a prompt interrupts only that one, when it is the one running
      const only = body && typeof body === 'object' ? (body as Record<string, unknown>).prompt_id : undefined
      if (running && (typeof only !== 'string' || only === running.prompt_id)) {
        interrupted = true
        wake?.()
      }
      return new Response(null, { status: 200 })
    }
    if (path === '/queue' && req.method === 'GET') {
      const entry = (p: ComfyPrompt) => [p.number, p.prompt_id, p.prompt, p.extra_data, outputsOf.get(p.prompt_id) ?? []]
      return json({ queue_running: running ? [entry(running)] : [], queue_pending: pending.map(entry) })
    }
    if (path === '/queue' && req.method === 'POST') {
      const b = (body ?? {}) as Record<string, any>
      if (b.clear) for (const p of pending.splice(0)) p.status = 'deleted'
      if (Array.isArray(b.delete)) {
        queueDeletes.push(b.delete.map(String))
        for (const id of b.delete) {
          const i = pending.findIndex(p => p.prompt_id === id)
          if (i >= 0) pending.splice(i, 1)[0]!.status = 'deleted'
        }
      }
      broadcastStatus()
      return new Response(null, { status: 200 })
    }
    return new Response('404: Not Found', { status: 404 })
  }

  const server = Bun.serve<WsData>({
    hostname: '127.0.0.1',
    port: opts.port ?? 0,
    idleTimeout: 0,
    fetch: handle,
    websocket: {
      open(ws) {
        const s = ws.data.socket
        s.open = true
        sockets.push(s)
        live.get(s.clientId)?.close(1000, 'replaced')
        live.set(s.clientId, ws)
        const data = { status: { exec_info: { queue_remaining: queueRemaining() } }, sid: s.clientId }
        s.frames.push({ type: 'status', data })
        ws.send(JSON.stringify({ type: 'status', data }))
        // on reconnect while its prompt runs, ComfyUI tells the client the current node
        if (running && running.client_id === s.clientId) {
          const node = Object.keys(running.prompt)[0]
          if (node) ws.send(JSON.stringify({ type: 'executing', data: { node, display_node: node, prompt_id: running.prompt_id } }))
        }
      },
      message() {},
      close(ws) {
        ws.data.socket.open = false
        if (live.get(ws.data.socket.clientId) === ws) live.delete(ws.data.socket.clientId)
      },
    },
  })
  fake.url = `http://127.0.0.1:${server.port}`
  return fake
}

/** A small API-format workflow (checkpoint → prompt → sampler → decode → save), optionally with a FakeScenario node. */
export function apiWorkflow(scenario?: Partial<Record<keyof Scenario | 'delay_ms', unknown>>): Record<string, any> {
  const w: Record<string, any> = {
    '4': { class_type: 'CheckpointLoaderSimple', inputs: { ckpt_name: 'v1-5-pruned-emaonly.safetensors' }, _meta: { title: 'Load Checkpoint' } },
    '6': { class_type: 'CLIPTextEncode', inputs: { text: 'a cat', clip: ['4', 1] }, _meta: { title: 'Positive' } },
    '5': { class_type: 'EmptyLatentImage', inputs: { width: 512, height: 512, batch_size: 1 } },
    '3': { class_type: 'KSampler', inputs: { seed: 1, steps: 4, cfg: 8, sampler_name: 'euler', scheduler: 'normal', denoise: 1,
      model: ['4', 0], positive: ['6', 0], negative: ['6', 0], latent_image: ['5', 0] } },
    '8': { class_type: 'VAEDecode', inputs: { samples: ['3', 0], vae: ['4', 2] } },
    '9': { class_type: 'SaveImage', inputs: { filename_prefix: 'ComfyUI', images: ['8', 0] } },
  }
  if (scenario) w['99'] = { class_type: 'FakeScenario', inputs: scenario }
  return w
}

/** The same workflow in ComfyUI's UI (editor) format, which POST /prompt cannot take. */
export function uiWorkflow(): Record<string, any> {
  return {
    last_node_id: 9, last_link_id: 9,
    nodes: [
      { id: 4, type: 'CheckpointLoaderSimple', pos: [26, 474], size: [315, 98], widgets_values: ['v1-5-pruned-emaonly.safetensors'], outputs: [] },
      { id: 9, type: 'SaveImage', pos: [1451, 189], size: [210, 58], widgets_values: ['ComfyUI'], inputs: [{ name: 'images', type: 'IMAGE', link: 9 }] },
    ],
    links: [[9, 8, 0, 9, 0, 'IMAGE']],
    groups: [], config: {}, extra: {}, version: 0.4,
  }
}
