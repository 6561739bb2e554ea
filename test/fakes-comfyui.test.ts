import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { apiWorkflow, startFakeComfy, uiWorkflow, type FakeComfy } from './fakes/comfyui.ts'
import { eventually } from './helpers/streams.ts'

let fake: FakeComfy
beforeAll(async () => {
  fake = await startFakeComfy()
})
afterAll(async () => {
  await fake.stop()
})

type Frame = { type: string; data: any }

/** Opens /ws?clientId= and collects its JSON frames (binary frames counted apart). */
async function connect(clientId: string, base = fake.url) {
  const ws = new WebSocket(`${base.replace(/^http/, 'ws')}/ws?clientId=${clientId}`)
  ws.binaryType = 'arraybuffer'
  const frames: Frame[] = []
  const binary: ArrayBuffer[] = []
  ws.onmessage = e => (typeof e.data === 'string' ? frames.push(JSON.parse(e.data)) : binary.push(e.data as ArrayBuffer))
  await new Promise((resolve, reject) => ((ws.onopen = resolve), (ws.onerror = reject)))
  await eventually(() => frames.length > 0)
  return { ws, frames, binary }
}
const post = (path: string, body: unknown, base = fake.url) =>
  fetch(base + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })

describe('the fake ComfyUI', () => {
  test('system_stats has ComfyUI\'s shape', async () => {
    const r = await fetch(`${fake.url}/system_stats`)
    expect(r.status).toBe(200)
    const b = await r.json() as any
    expect(b.system.comfyui_version).toMatch(/^0\.3\./)
    expect(Object.keys(b.system).sort()).toEqual(['argv', 'comfyui_version', 'embedded_python', 'os', 'python_version', 'pytorch_version', 'ram_free', 'ram_total'])
    expect(Object.keys(b.devices[0]).sort()).toEqual(['index', 'name', 'torch_vram_free', 'torch_vram_total', 'type', 'vram_free', 'vram_total'])
    expect((await fetch(`${fake.url}/api/system_stats`)).status).toBe(200)
  })

  test('a prompt runs: status, start, cached, executing, progress, a binary preview, executed, success, executing null; history and /view', async () => {
    const { ws, frames, binary } = await connect('c1')
    expect(frames[0]).toEqual({ type: 'status', data: { status: { exec_info: { queue_remaining: 0 } }, sid: 'c1' } })
    const r = await post('/prompt', { prompt: apiWorkflow({ images: 2, cached: ['4'] }), client_id: 'c1' })
    expect(r.status).toBe(200)
    const { prompt_id, number, node_errors } = await r.json() as any
    expect(typeof prompt_id).toBe('string')
    expect(number).toBe(0)
    expect(node_errors).toEqual({})
    await eventually(() => frames.some(f => f.type === 'executing' && f.data.node === null))
    const kinds = frames.filter(f => f.type !== 'status').map(f => f.type === 'executing' || f.type === 'progress' ? `${f.type}:${f.data.node}` : f.type)
    expect(kinds).toEqual(['execution_start', 'execution_cached', 'executing:6', 'executing:5', 'executing:3',
      'progress:3', 'progress:3', 'progress:3', 'progress:3', 'executing:8', 'executing:9', 'executed', 'execution_success', 'executing:null'])
    expect(frames.find(f => f.type === 'execution_cached')!.data.nodes).toEqual(['4'])
    expect(frames.find(f => f.type === 'progress')!.data).toEqual({ value: 1, max: 4, prompt_id, node: '3' })
    expect(binary).toHaveLength(1)
    expect(new DataView(binary[0]!).getUint32(0)).toBe(1)
    const out = frames.find(f => f.type === 'executed')!.data
    expect(out.node).toBe('9')
    expect(out.output.images).toHaveLength(2)
    expect(out.output.images[0]).toEqual({ filename: expect.stringMatching(/^ComfyUI_\d{5}_\.png$/), subfolder: '', type: 'output' })

    const h = await (await fetch(`${fake.url}/history/${prompt_id}`)).json() as any
    expect(h[prompt_id].status.status_str).toBe('success')
    expect(h[prompt_id].status.completed).toBe(true)
    expect(h[prompt_id].outputs['9'].images).toEqual(out.output.images)
    expect(h[prompt_id].prompt[1]).toBe(prompt_id)

    const img = out.output.images[0]
    const v = await fetch(`${fake.url}/view?filename=${img.filename}&subfolder=&type=output`)
    expect(v.headers.get('content-type')).toBe('image/png')
    const bytes = new Uint8Array(await v.arrayBuffer())
    expect([...bytes.subarray(0, 8)]).toEqual([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])
    expect(bytes).toEqual(fake.images.get(img.filename)!)
    expect((await fetch(`${fake.url}/view?filename=nope.png&type=output`)).status).toBe(404)
    expect(await (await fetch(`${fake.url}/history/unknown`)).json()).toEqual({})
    ws.close()
  })

  test('execution_error at a chosen node', async () => {
    const { ws, frames } = await connect('c2')
    const { prompt_id } = await (await post('/prompt', { prompt: apiWorkflow({ error_node: '3', error_message: 'CUDA out of memory' }), client_id: 'c2' })).json() as any
    await eventually(() => frames.some(f => f.type === 'executing' && f.data.node === null))
    const err = frames.find(f => f.type === 'execution_error')!.data
    expect(err).toMatchObject({ prompt_id, node_id: '3', node_type: 'KSampler', exception_message: 'CUDA out of memory', exception_type: 'RuntimeError' })
    expect(frames.some(f => f.type === 'execution_success')).toBe(false)
    const h = await (await fetch(`${fake.url}/history/${prompt_id}`)).json() as any
    expect(h[prompt_id].status.status_str).toBe('error')
    ws.close()
  })

  test('invalid prompts get ComfyUI\'s 400 bodies', async () => {
    let r = await post('/prompt', { prompt: apiWorkflow({ invalid_node: '4' }) })
    expect(r.status).toBe(400)
    const b = await r.json() as any
    expect(b.error).toEqual({ type: 'prompt_outputs_failed_validation', message: 'Prompt outputs failed validation', details: '', extra_info: {} })
    expect(b.node_errors['4'].class_type).toBe('CheckpointLoaderSimple')
    expect(b.node_errors['4'].errors[0].message).toBe('Value not in list')
    r = await post('/prompt', { prompt: uiWorkflow() })
    expect(r.status).toBe(400)
    expect((await r.json() as any).error.type).toBe('invalid_prompt')
    r = await post('/prompt', { prompt: { '1': { class_type: 'MissingNode', inputs: {} } } })
    expect((await r.json() as any).error.message).toBe('Cannot execute because node MissingNode does not exist.')
    r = await post('/prompt', { prompt: { '1': { class_type: 'KSampler', inputs: {} } } })
    expect((await r.json() as any).error.type).toBe('prompt_no_outputs')
    r = await post('/prompt', { client_id: 'x' })
    expect((await r.json() as any).error.type).toBe('no_prompt')
  })

  test('interrupt stops a hanging prompt; queue delete removes a pending one', async () => {
    const { ws, frames } = await connect('c3')
    const a = await (await post('/prompt', { prompt: apiWorkflow({ hang: true }), client_id: 'c3' })).json() as any
    const b = await (await post('/prompt', { prompt: apiWorkflow(), client_id: 'c3', prompt_id: 'chosen-id' })).json() as any
    expect(b.prompt_id).toBe('chosen-id')
    await eventually(() => frames.some(f => f.type === 'executing' && f.data.prompt_id === a.prompt_id))
    const q = await (await fetch(`${fake.url}/queue`)).json() as any
    expect(q.queue_running[0][1]).toBe(a.prompt_id)
    expect(q.queue_pending.map((e: any) => e[1])).toEqual(['chosen-id'])
    expect((await post('/queue', { delete: ['chosen-id'] })).status).toBe(200)
    expect(fake.queueDeletes.at(-1)).toEqual(['chosen-id'])
    expect((await post('/interrupt', {})).status).toBe(200)
    await eventually(() => frames.some(f => f.type === 'execution_interrupted' && f.data.prompt_id === a.prompt_id))
    expect(fake.interrupts.length).toBeGreaterThan(0)
    await eventually(() => fake.prompts.find(p => p.prompt_id === a.prompt_id)!.status === 'interrupted')
    expect(fake.prompts.find(p => p.prompt_id === 'chosen-id')!.status).toBe('deleted')
    ws.close()
  })

  test('a mismatched Origin is refused as ComfyUI does; Bun\'s fetch and WebSocket send none', async () => {
    const port = new URL(fake.url).port
    expect((await fetch(`${fake.url}/system_stats`, { headers: { origin: 'http://evil.example' } })).status).toBe(403)
    expect((await fetch(`${fake.url}/system_stats`, { headers: { origin: `http://127.0.0.1:${port}` } })).status).toBe(200)
    const { ws } = await connect('c4')
    ws.close()
    const upgrade = fake.requests.findLast(r => r.path === '/ws?clientId=c4')!
    expect(upgrade.headers.upgrade).toBe('websocket')
    expect(upgrade.headers.origin).toBeUndefined()
    expect(fake.sockets.find(s => s.clientId === 'c4')!.headers.origin).toBeUndefined()
  })

  test('behaviours: hang, error, redirect', async () => {
    const other = await startFakeComfy({ behaviour: 'error' })
    try {
      expect((await fetch(`${other.url}/system_stats`)).status).toBe(500)
      other.behaviour = 'redirect'
      const r = await fetch(`${other.url}/system_stats`, { redirect: 'manual' })
      expect(r.status).toBe(302)
      other.behaviour = 'hang'
      const t0 = Date.now()
      await expect(fetch(`${other.url}/system_stats`, { signal: AbortSignal.timeout(200) })).rejects.toThrow()
      expect(Date.now() - t0).toBeGreaterThanOrEqual(150)
      other.behaviour = 'normal'
      expect((await fetch(`${other.url}/system_stats`)).status).toBe(200)
    } finally {
      await other.stop()
    }
  })
})
