/**
 * @module What the sessions module offers the WebSocket (`/ws/chat`): sending a message as a user,
 * checking what a user may see, and the frames sessions publish. Frames go over one bus channel so
 * that sockets on every instance hear them; each carries the user it is for (a socket hears only
 * its own user's).
 */
import { defineChannel } from '../../db/bus.ts'
import type { Principal } from '../auth/service.ts'

/** A stored session message as the wire shows it (`GET /sessions/{id}/messages`, `MESSAGE_RECEIVED.message`). */
export interface SessionMessageDto {
  id: string
  role: 'user' | 'assistant'
  content: string
  created_at: string
}

/** Frames about a session, for `user_id`'s sockets (the user it belongs to). */
export type SessionFrame =
  | { type: 'MESSAGE_RECEIVED'; user_id: string; session_id: string; message: SessionMessageDto; client_msg_id?: string }
  | { type: 'MESSAGE_DELTA'; user_id: string; session_id: string; message_id: string; text: string }
export const sessionFramesChannel = defineChannel<SessionFrame>('session_frames')

export interface SessionsApi {
  /**
   * Store `content` as the user's message in the session and start the agent's reply (it runs on, and
   * its frames are published, whatever happens to the caller). Publishes MESSAGE_RECEIVED for the
   * user message (with `client_msg_id`) and, when the reply is finished, for the reply.
   * Another user's session: 404; an archived one: 409; an empty or too long content: 422.
   */
  send(p: Principal, sessionId: string, content: string, opts?: { clientMsgId?: string }): Promise<SessionMessageDto>
  /** whether the principal may see the session (its owner), for SUBSCRIBE */
  visible(p: Principal, sessionId: string): Promise<boolean>
}
