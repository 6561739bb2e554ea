import { describe, expect, test } from 'bun:test'
import { feedOf, formatEvent, sseResponse, type SseEvent } from '../src/lib/sse.ts'

async function readAll(res: Response): Promise<string> {
  return await res.text()
}

describe('sse helper', () => {
  test('headers, a first line at once, then id/event/data per event', async () => {
    async function* gen(): AsyncGenerator<SseEvent> {
      yield { id: 1, event: 'delta', data: { text: 'a\nb' } }
      yield { id: 2, event: 'done', data: { ok: true } }
    }
    const res = sseResponse(feedOf(() => gen()))
    expect(res.headers.get('content-type')).toBe('text/event-stream; charset=utf-8')
    expect(res.headers.get('cache-control')).toBe('no-store')
    expect(res.headers.get('x-accel-buffering')).toBe('no')
    expect(await readAll(res)).toBe(': connected\n\nid: 1\nevent: delta\ndata: {"text":"a\\nb"}\n\nid: 2\nevent: done\ndata: {"ok":true}\n\n')
  })

  test('refuses line breaks in event names and ids', () => {
    expect(() => formatEvent({ event: 'x\ndata: forged', data: 1 })).toThrow()
    expect(() => formatEvent({ id: '1\r', event: 'x', data: 1 })).toThrow()
  })

  test('pings while idle', async () => {
    const never = { [Symbol.asyncIterator]: () => ({ next: () => new Promise<IteratorResult<SseEvent>>(() => {}) }) }
    const res = sseResponse(feedOf(() => never), { pingMs: 20 })
    const reader = res.body!.getReader()
    let text = ''
    while (!text.includes(': ping')) text += new TextDecoder().decode((await reader.read()).value)
    expect(text).toStartWith(': connected\n\n')
    await reader.cancel()
  })

  test('server shutdown ends open streams with a final event', async () => {
    const shutdown = new AbortController()
    let cleanedUp = false
    async function* gen(signal: AbortSignal): AsyncGenerator<SseEvent> {
      try {
        yield { id: 1, event: 'delta', data: { text: 'hi' } }
        // a source waiting for its next event stops when the stream ends
        await new Promise((resolve) => signal.addEventListener('abort', resolve))
      } finally {
        cleanedUp = true
      }
    }
    const res = sseResponse(feedOf(gen), { shutdown: shutdown.signal })
    setTimeout(() => shutdown.abort(), 20)
    const text = await readAll(res)
    expect(text).toEndWith('event: shutdown\ndata: {"reason":"server_shutdown"}\n\n')
    expect(text).toContain('event: delta')
    await Bun.sleep(1)
    expect(cleanedUp).toBe(true)
  })

  test('a client that goes away closes the source', async () => {
    let cleanedUp = false
    async function* gen(): AsyncGenerator<SseEvent> {
      try {
        for (let i = 0; ; i++) {
          yield { id: i, event: 'tick', data: i }
          await Bun.sleep(5)
        }
      } finally {
        cleanedUp = true
      }
    }
    const reader = sseResponse(feedOf(gen)).body!.getReader()
    await reader.read()
    await reader.read()
    await reader.cancel()
    await Bun.sleep(20)
    expect(cleanedUp).toBe(true)
  })
})
