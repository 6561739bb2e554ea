/**
 * @module Talking to a ComfyUI server: where its endpoints are under the service's URL, and the
 * health probe (`GET /system_stats`). Requests go out through the outbound guard's fetch with an
 * admin's rights (an admin chose the URL), send no `Origin` (ComfyUI answers 403 on loopback when
 * the Origin's host differs from Host) and never follow a redirect: a 3xx is reported, so that a
 * service cannot point the server somewhere else than the URL an admin set.
 */
import { readUpTo } from '../../lib/read-limited.ts'

/** A `/system_stats` answer is a few hundred bytes; more than this is not one. */
const MAX_STATS_BYTES = 256 * 1024
const MAX_ERROR_CHARS = 300

/** The URL of `path` (e.g. `system_stats`, `prompt`) under a service's base URL, which may have a path of its own (a reverse proxy's prefix). */
export function engineUrl(baseUrl: string, path: string): URL {
  return new URL(path.replace(/^\/+/, ''), baseUrl.endsWith('/') ? baseUrl : `${baseUrl}/`)
}

export interface EngineDevice {
  name: string | null
  type: string | null
  index: number | null
  vram_total: number | null
  vram_free: number | null
}

export type ProbeResult =
  | { status: 'online'; responseTimeMs: number; version: string | null; devices: EngineDevice[] }
  | { status: 'offline'; responseTimeMs: number; error: string }

const str = (v: unknown) => (typeof v === 'string' ? v.slice(0, 200) : null)
const num = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v : null)

/** What a failed request says, in words an admin can act on (never a stack trace). */
export function describeFailure(error: unknown, timeoutMs: number): string {
  const e = error as { name?: string; code?: string; message?: string } | undefined
  if (e?.name === 'TimeoutError') return `no answer within ${timeoutMs} ms`
  if (e?.code === 'ECONNREFUSED') return 'connection refused: nothing is listening at this address'
  if (e?.code === 'ENOTFOUND') return 'the host name does not resolve'
  if (e?.code === 'ECONNRESET') return 'the connection was reset'
  if (e?.name === 'AppError' && e.message) return e.message.slice(0, MAX_ERROR_CHARS)
  if (e?.code && typeof e.code === 'string') return `the request failed (${e.code})`
  return 'the request failed'
}

/**
 * `GET {url}/system_stats` within `timeoutMs` (the body included). Online when it answers 200 with
 * ComfyUI's `{ system: { comfyui_version, … }, devices: [...] }`; anything else is offline with the reason.
 */
export async function probeComfyUI(fetcher: typeof fetch, baseUrl: string, timeoutMs: number): Promise<ProbeResult> {
  const started = performance.now()
  const elapsed = () => Math.round(performance.now() - started)
  const offline = (error: string): ProbeResult => ({ status: 'offline', responseTimeMs: elapsed(), error })
  const signal = AbortSignal.timeout(timeoutMs)
  try {
    const res = await fetcher(engineUrl(baseUrl, 'system_stats'), { method: 'GET', headers: { accept: 'application/json' }, redirect: 'manual', signal })
    if (res.status >= 300 && res.status < 400) {
      void res.body?.cancel().catch(() => {})
      const to = res.headers.get('location')
      return offline(`answered ${res.status}, a redirect${to ? ` to ${to.slice(0, 200)}` : ''}: redirects are not followed, set the final address as the service's URL`)
    }
    if (res.status !== 200) {
      void res.body?.cancel().catch(() => {})
      return offline(`answered HTTP ${res.status} to GET /system_stats`)
    }
    const { bytes, truncated } = await readUpTo(res.body, MAX_STATS_BYTES, signal)
    if (truncated) return offline(`the answer to GET /system_stats is larger than ${MAX_STATS_BYTES} bytes: not ComfyUI's`)
    let body: unknown
    try {
      body = JSON.parse(new TextDecoder().decode(bytes))
    } catch {
      return offline('the answer to GET /system_stats is not JSON: is this a ComfyUI server?')
    }
    const system = (body as { system?: unknown } | null)?.system
    if (!system || typeof system !== 'object' || Array.isArray(system)) return offline('the answer to GET /system_stats has no "system" object: is this a ComfyUI server?')
    const devices = (body as { devices?: unknown }).devices
    return {
      status: 'online',
      responseTimeMs: elapsed(),
      version: str((system as Record<string, unknown>).comfyui_version),
      devices: (Array.isArray(devices) ? devices : []).slice(0, 64).filter((d): d is Record<string, unknown> => !!d && typeof d === 'object').map((d) => ({
        name: str(d.name),
        type: str(d.type),
        index: num(d.index),
        vram_total: num(d.vram_total),
        vram_free: num(d.vram_free),
      })),
    }
  } catch (error) {
    return offline(describeFailure(error, timeoutMs))
  }
}
