/**
 * @module `GET /ws/chat` (docs/api.md §20): the WebSocket, on Elysia's `ws` over Bun's native one.
 * The handshake reads the credential (`Authorization`, `Sec-WebSocket-Protocol: bearer, <token>`,
 * `?token=`, then the `hearth_access` cookie) and always upgrades: a refused socket is closed at once
 * with 4000 + the HTTP status (4401, 4403, 4429), which a browser can read and an HTTP 401 on an
 * upgrade it cannot. An admitted socket joins the hub (frames of its user) and the subscriptions
 * registry (a revoked credential closes it with 4401, on any instance).
 */
import type { ServerWebSocket } from 'bun'
import { Elysia, type Context } from 'elysia'
import { websocket as elysiaSockets } from 'elysia/ws'
import type { Config } from '../../config.ts'
import { AppError, unauthorized } from '../../lib/errors.ts'
import type { Logger } from '../../lib/logger.ts'
import type { RateLimiter } from '../../lib/rate-limiter.ts'
import { createAuthGate, presentedCredential, type AuthGateDeps, type Credential } from '../../plugins/auth.ts'
import type { Subscriptions } from '../../runs/subscriptions.ts'
import type { AuthService, Principal } from '../auth/service.ts'
import { sessionNotFound } from '../sessions/errors.ts'
import type { SessionsApi } from '../sessions/types.ts'
import type { WorkflowsApi } from '../workflows/types.ts'
import {
  BACKPRESSURE_LIMIT_BYTES,
  checkFrame,
  closeCodeOf,
  errorFrame,
  FRAMES_PER_SECOND,
  GOING_AWAY,
  HARD_MAX_FRAME_BYTES,
  IDLE_TIMEOUT_S,
  MAX_FRAME_BYTES,
  PONG,
  type ClientFrame,
} from './frames.ts'
import { SocketConnection, type SocketHub } from './hub.ts'

export const SOCKET_PATH = '/ws/chat'
const BEARER_PROTOCOL = 'bearer'

/** What the handshake decided, carried into the socket's data (Elysia copies the request context there), with that context. */
type Admission = ({ principal: Principal } | { refused: AppError }) & { context?: Record<string, unknown> }

/** The part of a socket's data that is ours. */
interface SocketData {
  admission?: Admission
  connection?: SocketConnection
}

const dataOf = (ws: { data: unknown }) => ws.data as SocketData

/**
 * The credential of a handshake and whether it came as the `bearer` subprotocol (then the answer
 * must select that protocol, or a browser fails the handshake before it sees our close code).
 * `null`: a credential that is there but malformed.
 */
function handshakeCredential(request: Request, query: Record<string, string | undefined>): { credential: Credential | null | undefined; viaProtocol: boolean } {
  if (request.headers.has('authorization')) return { credential: presentedCredential(request), viaProtocol: false }
  const offered = request.headers.get('sec-websocket-protocol')
  if (offered) {
    const [first, token] = offered.split(',').map((p) => p.trim())
    if (first === BEARER_PROTOCOL) return { credential: token ? { token, fromCookie: false } : null, viaProtocol: true }
  }
  const token = query.token
  if (token !== undefined) return { credential: token ? { token, fromCookie: false } : null, viaProtocol: false }
  return { credential: presentedCredential(request), viaProtocol: false }
}

/** A close reason: at most 123 bytes (RFC 6455), cut on a character. */
const closeReason = (text: string) => {
  if (Buffer.byteLength(text) <= 123) return text
  let cut = text.slice(0, 120)
  while (Buffer.byteLength(cut) > 120) cut = cut.slice(0, -1)
  return `${cut}...`
}

const refusalReason = (e: AppError) => closeReason(`${e.code}: ${e.detail}`)

const messageOf = (e: AppError) => (e.errors?.length ? `${e.detail} (${e.errors.map((p) => (p.path ? `${p.path}: ${p.message}` : p.message)).join('; ')})` : e.detail)

/** A `client_msg_id` to echo from a frame that was not checked (refused for its rate). */
const echoedId = (data: unknown) => {
  const id = typeof data === 'object' && data !== null ? (data as { client_msg_id?: unknown }).client_msg_id : undefined
  return typeof id === 'string' && id.length > 0 && id.length <= 128 ? id : undefined
}

/** A frame's size without encoding it when its length already tells (a UTF-16 unit is 1 to 3 UTF-8 bytes). */
const oversize = (message: string | Buffer) => {
  if (typeof message !== 'string') return message.byteLength > MAX_FRAME_BYTES
  if (message.length * 3 <= MAX_FRAME_BYTES) return false
  return message.length > MAX_FRAME_BYTES || Buffer.byteLength(message) > MAX_FRAME_BYTES
}

/**
 * Bun.serve's `websocket` option for the app: Elysia's handlers (each route's own, from the socket's
 * data), behind a check that answers a frame over MAX_FRAME_BYTES with an ERROR before Elysia parses
 * it, and Bun's limits: a frame over HARD_MAX_FRAME_BYTES closes the socket (1009); a socket silent
 * twice IDLE_TIMEOUT_S (Bun pings it after the first) or holding BACKPRESSURE_LIMIT_BYTES unsent is closed.
 */
export const socketServer: Bun.WebSocketHandler<unknown> = {
  // (Elysia declares its own copy of Bun's socket type)
  ...(elysiaSockets as unknown as Bun.WebSocketHandler<unknown>),
  message(ws: ServerWebSocket<unknown>, message: string | Buffer) {
    const connection = dataOf(ws).connection
    if (connection && oversize(message)) {
      if (!connection.takeFrame()) return connection.send(errorFrame('RATE_LIMITED', rateLimitedMessage))
      return connection.send(errorFrame('PAYLOAD_TOO_LARGE', `Frames are limited to ${MAX_FRAME_BYTES} bytes (send larger messages with POST /api/v1/sessions/{id}/messages)`))
    }
    elysiaSockets.message(ws as never, message)
  },
  maxPayloadLength: HARD_MAX_FRAME_BYTES,
  idleTimeout: IDLE_TIMEOUT_S,
  sendPings: true,
  backpressureLimit: BACKPRESSURE_LIMIT_BYTES,
  closeOnBackpressureLimit: true,
  perMessageDeflate: false,
}

/**
 * Elysia keeps the whole request context of the handshake for the life of a socket (its handlers
 * close over it, and the socket's data is a copy of it): the Request, its headers parsed into an
 * object, the query (with the token), cookies, the response headers. A socket needs none of it once
 * open; dropping it from both takes ~2 KB off each idle socket (measured with bench/ws.ts), more with
 * a browser's headers. Not at once: Bun opens the socket inside `upgrade()`, and Elysia still reads
 * the context when the handshake's handler returns (its response and after-response hooks, the
 * access log) — so a second later, for every socket opened meanwhile at once.
 */
const REQUEST_FIELDS = ['request', 'headers', 'query', 'cookie', 'set', 'qi', 'url', 'path', 'route', 'params', 'body', 'redirect', 'status', 'server'] as const
const FORGET_AFTER_MS = 1000
let toForget: Record<string, unknown>[] = []
function forgetRequestLater(...objects: Record<string, unknown>[]) {
  if (toForget.length === 0) setTimeout(forgetRequests, FORGET_AFTER_MS).unref()
  toForget.push(...objects)
}
function forgetRequests() {
  const batch = toForget
  toForget = []
  for (const object of batch) for (const key of REQUEST_FIELDS) delete object[key]
}

const rateLimitedMessage = `More than ${FRAMES_PER_SECOND} frames a second: this frame was not handled; slow down`

export function socketRoutes(deps: {
  hub: SocketHub
  auth: AuthService
  limiter: RateLimiter
  config: Config
  userLimit?: AuthGateDeps['userLimit']
  subscriptions: Subscriptions
  sessions: SessionsApi
  workflows: Pick<WorkflowsApi, 'get'>
  logger: Logger
}) {
  const { hub, subscriptions, sessions, workflows, logger } = deps
  const gate = createAuthGate(deps)

  async function admit(ctx: Context): Promise<Admission> {
    const { request, server, set } = ctx
    const headers = set.headers as Record<string, string | number>
    const { credential, viaProtocol } = handshakeCredential(request, ctx.query)
    if (viaProtocol) set.headers['sec-websocket-protocol'] = BEARER_PROTOCOL
    try {
      if (!credential) {
        // not limited before routing (plugins/auth.ts): a handshake without a credential counts here
        gate.limitIp(request, server, headers)
        throw credential === null ? unauthorized('Malformed credential: send a bearer token, Sec-WebSocket-Protocol "bearer, <token>" or ?token=') : unauthorized()
      }
      return { principal: await gate.admit(request, server, headers, true, credential, true) }
    } catch (error) {
      if (error instanceof AppError) return { refused: error }
      throw error
    }
  }

  const fail = (c: SocketConnection, error: unknown, clientMsgId: string | undefined) => {
    if (error instanceof AppError) return c.send(errorFrame(error.code, messageOf(error), clientMsgId))
    logger.error('ws: a frame failed', { error, user_id: c.userId })
    c.send(errorFrame('INTERNAL_ERROR', 'Something went wrong on our side', clientMsgId))
  }

  async function handle(c: SocketConnection, frame: ClientFrame) {
    const p = c.principal
    switch (frame.type) {
      case 'PING':
        return c.send(PONG)
      case 'SUBSCRIBE': {
        try {
          if (frame.session_id !== undefined && !(await sessions.visible(p, frame.session_id))) throw sessionNotFound()
          if (frame.workflow_id !== undefined) await workflows.get(p.userId, frame.workflow_id)
        } catch (error) {
          return fail(c, error, undefined)
        }
        if (frame.session_id !== undefined) (c.sessions ??= new Set()).add(frame.session_id)
        if (frame.workflow_id !== undefined) (c.workflows ??= new Set()).add(frame.workflow_id)
        return
      }
      case 'SEND_MESSAGE': {
        // a socket narrowed by SUBSCRIBE hears the session it writes to (from the stored user message on)
        const adds = c.sessions !== undefined && !c.sessions.has(frame.session_id)
        if (adds) c.sessions!.add(frame.session_id)
        try {
          await sessions.send(p, frame.session_id, frame.content, { clientMsgId: frame.client_msg_id })
        } catch (error) {
          if (adds) c.sessions!.delete(frame.session_id)
          fail(c, error, frame.client_msg_id)
        }
      }
    }
  }

  return new Elysia({ name: 'hearth.routes.ws', detail: { tags: ['Workflows'] } }).ws(SOCKET_PATH, {
    detail: {
      summary: 'Open the chat WebSocket',
      description:
        'Sessions and workflows in real time (docs/api.md §20): `SEND_MESSAGE`, `SUBSCRIBE` and `PING` in; `MESSAGE_RECEIVED`, `MESSAGE_DELTA`, `WORKFLOW_LOCKED`, `WORKFLOW_UNLOCKED`, `ERROR` and `PONG` out. ' +
        'Authenticated by `Authorization: Bearer`, `Sec-WebSocket-Protocol: bearer, <token>`, `?token=` or the `hearth_access` cookie (from this site or an allowed origin); a refused credential closes the socket with 4401 (4403, 4429).',
      // no `security`: a refused credential is not an HTTP answer here but a close code, after the upgrade
      parameters: [{ name: 'token', in: 'query', required: false, description: 'An access token or an API key (`hk_…`), for clients that cannot set headers on a WebSocket (browsers)', schema: { type: 'string' } }],
    },
    async upgrade(ctx) {
      const admission = await admit(ctx as unknown as Context)
      admission.context = ctx as unknown as Record<string, unknown>
      ;(ctx as unknown as SocketData).admission = admission
    },
    open(ws) {
      const data = dataOf(ws)
      const admission = data.admission
      data.admission = undefined
      if (admission?.context) forgetRequestLater(admission.context, data as Record<string, unknown>)
      if (!admission || 'refused' in admission) {
        const refused = admission?.refused ?? unauthorized()
        return ws.close(closeCodeOf(refused.status), refusalReason(refused))
      }
      if (hub.closed) return ws.close(GOING_AWAY, 'Server shutting down')
      const { principal } = admission
      let subscription
      try {
        subscription = subscriptions.open(principal)
      } catch (error) {
        if (error instanceof AppError) return ws.close(closeCodeOf(error.status), refusalReason(error))
        throw error
      }
      const c = new SocketConnection(ws.raw as ServerWebSocket<unknown>, principal, subscription)
      data.connection = c
      hub.add(c)
      // a revoked session or key, or the user cut off (role, disabled, deleted): on any instance
      subscription.onEnd((final) => {
        const { code, reason } = final.data as { code?: string; reason?: string }
        c.socket.close(closeCodeOf(401), closeReason(`${code ?? 'UNAUTHORIZED'}: ${reason ?? final.event}`))
      })
    },
    message(ws, data: unknown) {
      const c = dataOf(ws).connection
      if (!c) return // refused, closing
      if (!c.takeFrame() || c.saturated) return c.send(errorFrame('RATE_LIMITED', rateLimitedMessage, echoedId(data)))
      const check = checkFrame(data)
      if (!check.ok) return c.send(errorFrame('VALIDATION_ERROR', check.message, check.clientMsgId))
      const frame = check.frame
      // one frame at a time, in the order they came: a PING after a SUBSCRIBE is answered once it holds
      c.pending++
      c.tail = c.tail
        .then(() => handle(c, frame))
        .catch((error) => logger.error('ws: a frame failed', { error, user_id: c.userId }))
        .finally(() => void c.pending--)
    },
    close(ws) {
      const data = dataOf(ws)
      const c = data.connection
      if (!c) return
      data.connection = undefined
      c.subscription.release()
      hub.remove(c)
    },
  })
}
