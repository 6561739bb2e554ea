/** Read server-sent events from a fetch Response, as they arrive. */

export interface ReceivedEvent {
  id: number | undefined
  event: string
  data: any
  /** ms since reading started */
  at: number
}

/** Read events until `stop` says so (or the stream ends); comments are skipped. */
export async function readEvents(res: Response, stop: (e: ReceivedEvent, all: ReceivedEvent[]) => boolean = () => false): Promise<ReceivedEvent[]> {
  const reader = res.body!.getReader()
  const decoder = new TextDecoder()
  const started = performance.now()
  const events: ReceivedEvent[] = []
  let buffer = ''
  try {
    for (;;) {
      const { value, done } = await reader.read()
      if (done) return events
      buffer += decoder.decode(value, { stream: true })
      let cut
      while ((cut = buffer.indexOf('\n\n')) !== -1) {
        const block = buffer.slice(0, cut)
        buffer = buffer.slice(cut + 2)
        const fields: Record<string, string> = {}
        for (const line of block.split('\n')) {
          if (!line || line.startsWith(':')) continue
          const i = line.indexOf(':')
          fields[line.slice(0, i)] = line.slice(i + 1).replace(/^ /, '')
        }
        if (!fields.event && !fields.data) continue
        const e: ReceivedEvent = { id: fields.id ? Number(fields.id) : undefined, event: fields.event ?? 'message', data: fields.data ? JSON.parse(fields.data) : null, at: performance.now() - started }
        events.push(e)
        if (stop(e, events)) return events
      }
    }
  } finally {
    await reader.cancel().catch(() => {})
  }
}

export const textOf = (events: ReceivedEvent[]) => events.filter((e) => e.event === 'delta').map((e) => e.data.text as string).join('')
