/**
 * @module CORS for the origins in HEARTH_CORS_ORIGINS (`*`: any origin, never with credentials).
 * A preflight from any other origin is answered as what it is — a 403 problem naming
 * HEARTH_CORS_ORIGINS — and logged once per origin every 10 minutes, so a frontend developer
 * learns what to set instead of meeting a bare 405 or a 204 without CORS headers.
 */
import { cors } from '@elysiajs/cors'
import { Elysia } from 'elysia'
import { forbidden } from '../lib/errors.ts'
import type { Logger } from '../lib/logger.ts'

/** a refused origin is logged at most once in this window, and at most HINTS_PER_WINDOW origins are */
const HINT_WINDOW_MS = 10 * 60_000
const HINTS_PER_WINDOW = 20

export const corsRefused = (origin: string, configured: boolean) =>
  forbidden(
    configured
      ? `Cross-origin requests from ${origin} are not allowed: add the origin to HEARTH_CORS_ORIGINS on the server`
      : `Cross-origin requests are not allowed: HEARTH_CORS_ORIGINS is not set on the server (set it to ${origin} to let browser apps there call this API)`,
  )

export function corsPlugin(deps: { origins: string[]; logger: Logger }) {
  const { origins, logger } = deps
  const any = origins.includes('*')
  const allowed = new Set(origins)
  let windowStart = 0
  let hinted = new Set<string>()

  const hint = (origin: string, path: string) => {
    const now = Date.now()
    if (now - windowStart >= HINT_WINDOW_MS) {
      windowStart = now
      hinted = new Set()
    }
    if (hinted.has(origin) || hinted.size >= HINTS_PER_WINDOW) return
    hinted.add(origin)
    logger.warn('CORS preflight refused: the origin is not in HEARTH_CORS_ORIGINS', {
      origin,
      path,
      hint: origins.length ? 'add the origin to HEARTH_CORS_ORIGINS (comma-separated)' : 'HEARTH_CORS_ORIGINS is not set: set it to the origins of your browser apps (comma-separated)',
    })
  }

  // runs before the CORS plugin's own preflight answer (hooks run in the order they are added)
  const refusal = new Elysia({ name: 'hearth.cors-refusal' }).onRequest(({ request }) => {
    if (any || request.method !== 'OPTIONS') return
    const origin = request.headers.get('origin')
    if (origin === null || allowed.has(origin) || request.headers.get('access-control-request-method') === null) return
    const shown = origin.slice(0, 200)
    hint(shown, new URL(request.url).pathname)
    throw corsRefused(shown, origins.length > 0)
  })
  if (origins.length === 0) return refusal
  return refusal.use(
    cors({
      origin: any ? '*' : origins,
      credentials: !any,
      exposeHeaders: ['X-Request-Id', 'Location', 'Retry-After', 'RateLimit-Limit', 'RateLimit-Remaining', 'RateLimit-Reset'],
      maxAge: 600,
    }),
  )
}
