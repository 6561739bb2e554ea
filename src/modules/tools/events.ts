/**
 * @module Tool activity, live (GET /tools/events): a call started or finished, an MCP server's
 * status changed. Published on one bus channel, so a call made on one instance reaches its user's
 * streams on every instance. Live only: a stream hears what happens after it opened (the logs
 * are the record).
 */
import { defineChannel, type Bus } from '../../db/bus.ts'
import type { EventFeed, SseEvent } from '../../lib/sse.ts'

export type ToolEvent =
  | { event: 'tool_started'; data: { log_id: string; tool: string } }
  | { event: 'tool_finished'; data: { log_id: string; tool: string; is_error: boolean; duration_ms: number } }
  | { event: 'server_status'; data: { server_id: string; status: 'connected' | 'error'; error: string | null } }

/** `userId` null: for everyone who can see it (a global server's status). */
const toolEventsChannel = defineChannel<{ userId: string | null } & ToolEvent>('tool_events')

/** Events a stream may hold unread before the oldest are dropped (a reader that stopped reading must not grow without bound). */
const MAX_QUEUED = 1_000

export function createToolEvents(deps: { bus: Bus }) {
  const listeners = new Map<string, Set<(e: ToolEvent) => void>>()
  const unsubscribe = deps.bus.subscribe(toolEventsChannel, ({ userId, ...e }) => {
    const targets = userId ? [listeners.get(userId)] : [...listeners.values()]
    for (const set of targets) if (set) for (const l of set) l(e as ToolEvent)
  })

  return {
    publish: (userId: string | null, e: ToolEvent) => deps.bus.publish(toolEventsChannel, { userId, ...e }),

    /** What happens to `userId`'s tools from now on, as an SSE feed with increasing ids. */
    feed(userId: string): EventFeed {
      const queue: SseEvent[] = []
      let seq = 0
      let wake: (() => void) | undefined
      const listener = (e: ToolEvent) => {
        queue.push({ id: ++seq, event: e.event, data: e.data })
        if (queue.length > MAX_QUEUED) queue.shift()
        wake?.()
      }
      let set = listeners.get(userId)
      if (!set) listeners.set(userId, (set = new Set()))
      set.add(listener)
      return {
        read: () => queue.shift(),
        wait(w) {
          wake = () => {
            wake = undefined
            w()
          }
          return () => void (wake = undefined)
        },
        close() {
          set.delete(listener)
          if (set.size === 0 && listeners.get(userId) === set) listeners.delete(userId)
        },
      }
    },

    close: unsubscribe,
  }
}

export type ToolEvents = ReturnType<typeof createToolEvents>
