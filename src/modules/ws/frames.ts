/**
 * @module The frames of `/ws/chat` (docs/api.md §20): zod schemas of what a client may send, the
 * shapes the server sends, and the limits and close codes of a socket.
 */
import { z } from 'zod'
import type { ErrorCode } from '../../lib/errors.ts'
import type { SessionMessageDto } from '../sessions/types.ts'

/** Frames larger than this get `ERROR PAYLOAD_TOO_LARGE` unread (the socket stays open). */
export const MAX_FRAME_BYTES = 64 * 1024
/** Bun's own cap (`maxPayloadLength`): a frame larger than this closes the socket with 1009 before it is buffered. */
export const HARD_MAX_FRAME_BYTES = 1024 * 1024
/** Frames a socket may send per second, on average; the bucket holds this many too (a burst). */
export const FRAMES_PER_SECOND = 20
/** Frames of one socket waiting for the ones before them (a send still storing its message): past this, `ERROR RATE_LIMITED`. */
export const MAX_PENDING_FRAMES = 32
/** Seconds of silence from the client after which Bun pings it; silent for as long again, the socket is dead and closed. */
export const IDLE_TIMEOUT_S = 30
/** Unsent bytes a socket may hold before Bun closes it: a client that does not read. */
export const BACKPRESSURE_LIMIT_BYTES = 4 * 1024 * 1024

/**
 * Close codes: a socket refused or ended by the server closes with 4000 + the HTTP status the same
 * failure has elsewhere — 4401 (no, bad or revoked credential), 4403 (an API key without the `api`
 * scope, a cookie sent from another site), 4429 (too many sockets or connections) — and 1001 when
 * the server shuts down.
 */
export const closeCodeOf = (status: number) => 4000 + status
export const GOING_AWAY = 1001

/** no control characters: a NUL would reach Postgres in a query parameter (an error there, not an answer) */
const printable = /^[^\u0000-\u001f\u007f]*$/
const id = z.string().min(1).max(64).regex(printable, 'must not contain control characters')
/** what the client calls a message it sends, echoed back on its MESSAGE_RECEIVED or ERROR */
const clientMsgId = z.string().min(1).max(128).regex(printable, 'must not contain control characters')

export const sendMessageFrame = z.object({ type: z.literal('SEND_MESSAGE'), session_id: id, content: z.string(), client_msg_id: clientMsgId.optional() })
export const subscribeFrame = z
  .object({ type: z.literal('SUBSCRIBE'), session_id: id.optional(), workflow_id: id.optional() })
  .refine((f) => f.session_id !== undefined || f.workflow_id !== undefined, { message: 'SUBSCRIBE needs a session_id or a workflow_id', path: ['session_id'] })
export const pingFrame = z.object({ type: z.literal('PING') })

export const CLIENT_FRAME_TYPES = ['SEND_MESSAGE', 'SUBSCRIBE', 'PING'] as const
const byType = { SEND_MESSAGE: sendMessageFrame, SUBSCRIBE: subscribeFrame, PING: pingFrame } as const

export type ClientFrame = z.infer<typeof sendMessageFrame> | z.infer<typeof subscribeFrame> | z.infer<typeof pingFrame>

/** What the server sends (bus frames lose their `user_id` on the way out). */
export type ServerFrame =
  | { type: 'MESSAGE_RECEIVED'; session_id: string; message: SessionMessageDto; client_msg_id?: string }
  | { type: 'MESSAGE_DELTA'; session_id: string; message_id: string; text: string }
  | { type: 'WORKFLOW_LOCKED'; workflow_id: string; reason: string }
  | { type: 'WORKFLOW_UNLOCKED'; workflow_id: string }
  | ErrorFrame
  | { type: 'PONG' }

export interface ErrorFrame {
  type: 'ERROR'
  code: ErrorCode
  message: string
  client_msg_id?: string
}

export const errorFrame = (code: ErrorCode, message: string, clientMsgId?: string): string =>
  JSON.stringify(clientMsgId === undefined ? { type: 'ERROR', code, message } : { type: 'ERROR', code, message, client_msg_id: clientMsgId })

export const PONG = JSON.stringify({ type: 'PONG' })

export type FrameCheck = { ok: true; frame: ClientFrame } | { ok: false; message: string; clientMsgId?: string }

/**
 * Check what Elysia handed over for a text frame — the parsed JSON, or the text when it was not
 * JSON — against the frame schemas. A frame that fails still has its `client_msg_id` echoed when
 * it carries a usable one.
 */
export function checkFrame(data: unknown): FrameCheck {
  if (data instanceof Uint8Array) return { ok: false, message: 'Binary frames are not accepted: send JSON text frames' }
  if (typeof data !== 'object' || data === null || Array.isArray(data)) return { ok: false, message: 'A frame is a JSON object with a "type" (SEND_MESSAGE, SUBSCRIBE or PING)' }
  const raw = data as Record<string, unknown>
  const echo = clientMsgId.safeParse(raw.client_msg_id)
  const clientId = echo.success ? echo.data : undefined
  const type = raw.type
  const schema = typeof type === 'string' && Object.hasOwn(byType, type) ? byType[type as keyof typeof byType] : undefined
  if (!schema) {
    const what = type === undefined ? 'A frame needs a "type"' : `Unknown frame type ${JSON.stringify(type).slice(0, 80)}`
    return { ok: false, message: `${what}: expected ${CLIENT_FRAME_TYPES.join(', ')}`, clientMsgId: clientId }
  }
  const parsed = schema.safeParse(raw)
  if (parsed.success) return { ok: true, frame: parsed.data }
  const problems = parsed.error.issues.slice(0, 5).map((i) => (i.path.length ? `${i.path.join('.')}: ${i.message}` : i.message))
  return { ok: false, message: `Bad ${type} frame: ${problems.join('; ')}`, clientMsgId: clientId }
}
