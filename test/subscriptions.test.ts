/**
 * The subscriptions registry on its own (src/runs/subscriptions.ts): the per-user cap, which
 * revocation ends which subscription, topics, and how an SSE response ends when its subscription
 * is ended from outside.
 */
import { afterAll, beforeAll, expect, test } from 'bun:test'
import { createBus, type Bus } from '../src/db/bus.ts'
import { AppError } from '../src/lib/errors.ts'
import { createLogger } from '../src/lib/logger.ts'
import { feedOf, sseResponse, subscribedBody, type SseEvent } from '../src/lib/sse.ts'
import { createSubscriptions, deletedEvent, type FinalEvent, type Subscriptions } from '../src/runs/subscriptions.ts'
import { createTestDatabase, eachDialect, type TestDatabase } from './helpers/db.ts'

eachDialect('subscriptions', (dialect) => {
  let db: TestDatabase
  let bus: Bus
  let subs: Subscriptions
  beforeAll(async () => {
    db = await createTestDatabase(dialect)
    bus = createBus({ database: db.database, logger: createLogger('silent') })
    subs = createSubscriptions({ bus, maxPerUser: 3 })
    await bus.ready()
  })
  afterAll(async () => {
    subs.close()
    await bus.close()
    await db.drop()
  })

  const owner = (userId: string, sessionId: string | null, apiKeyId: string | null = null) => ({ userId, sessionId, apiKeyId })
  /** open a subscription and record how it ended */
  const opened = (o: ReturnType<typeof owner>) => {
    const sub = subs.open(o)
    const ended: FinalEvent[] = []
    sub.onEnd((f) => ended.push(f))
    return { sub, ended }
  }

  test('at most maxPerUser per user: the next is 429 with Retry-After; release frees a place; other users are apart', () => {
    const a = opened(owner('cap-u', 's1'))
    const b = opened(owner('cap-u', 's2'))
    const k = opened(owner('cap-u', null, 'k1'))
    let refused: unknown
    try {
      subs.open(owner('cap-u', 's3'))
    } catch (e) {
      refused = e
    }
    expect(refused).toBeInstanceOf(AppError)
    expect(refused).toMatchObject({ status: 429, code: 'RATE_LIMITED', headers: { 'retry-after': '5' } })
    const other = opened(owner('cap-other', 's9'))
    a.sub.release()
    a.sub.release() // twice is harmless
    expect(subs.countOf('cap-u')).toBe(2)
    const c = opened(owner('cap-u', 's3'))
    for (const x of [b, c, k, other]) x.sub.release()
    expect(subs.countOf('cap-u')).toBe(0)
  })

  test('a revoked session, a deleted key and a cut-off each end what they should, once', async () => {
    const s1 = opened(owner('rev-u', 's1'))
    const s2 = opened(owner('rev-u', 's2'))
    const key = opened(owner('rev-u', null, 'k1'))
    subs.revoke({ kind: 'session', id: 's1' })
    subs.revoke({ kind: 'session', id: 's1' })
    expect(s1.ended).toEqual([{ event: 'revoked', data: { code: 'UNAUTHORIZED', reason: 'session_revoked' } }])
    expect([s2.ended, key.ended]).toEqual([[], []])
    subs.revoke({ kind: 'api_key', id: 'k1' })
    expect(key.ended).toEqual([{ event: 'revoked', data: { code: 'UNAUTHORIZED', reason: 'api_key_revoked' } }])
    // an ended subscription holds its place until its stream has closed (released)
    expect(subs.countOf('rev-u')).toBe(3)
    s1.sub.release()
    key.sub.release()
    // a cut-off ends what was opened until then, not what is opened after it
    const cutoff = Date.now()
    await Bun.sleep(2)
    const later = opened(owner('rev-u', 's3'))
    subs.revoke({ kind: 'user', id: 'rev-u', after: cutoff - 1_000 })
    expect(s2.ended).toEqual([])
    subs.revoke({ kind: 'user', id: 'rev-u', after: cutoff })
    expect(s2.ended).toEqual([{ event: 'revoked', data: { code: 'TOKEN_EXPIRED', reason: 'access_changed' } }])
    subs.revoke({ kind: 'user', id: 'someone-else', after: Date.now() + 60_000 })
    expect(later.ended).toEqual([])
    for (const x of [s2, later]) x.sub.release()
    expect(subs.countOf('rev-u')).toBe(0)
    // released subscriptions are ended no more
    const gone = opened(owner('rev-u', 's4'))
    gone.sub.release()
    subs.revoke({ kind: 'session', id: 's4' })
    expect(gone.ended).toEqual([])
  })

  test('ending a topic ends its followers (through the bus); a subscription ended before onEnd hears of it at once', async () => {
    const a = opened(owner('topic-u', 's1'))
    a.sub.watch('conversation:1')
    const b = opened(owner('topic-u', 's2'))
    b.sub.watch('conversation:2')
    const late = subs.open(owner('topic-u2', 's3'))
    late.watch('conversation:1')
    await subs.endTopic('conversation:1', deletedEvent('conversation_deleted'))
    expect(a.ended).toEqual([{ event: 'deleted', data: { code: 'NOT_FOUND', reason: 'conversation_deleted' } }])
    expect(b.ended).toEqual([])
    const heard: FinalEvent[] = []
    late.onEnd((f) => heard.push(f))
    expect(heard).toEqual([deletedEvent('conversation_deleted')])
    for (const s of [a.sub, b.sub, late]) s.release()
  })

  test('an SSE response whose subscription is ended writes the final event, closes and releases it; a client leaving releases it too', async () => {
    const never = { [Symbol.asyncIterator]: () => ({ next: () => new Promise<IteratorResult<SseEvent>>(() => {}) }) }
    const sub = subs.open(owner('sse-u', 's1'))
    const res = sseResponse(feedOf(() => never), { subscription: sub })
    setTimeout(() => subs.revoke({ kind: 'session', id: 's1' }), 10)
    expect(await res.text()).toBe(': connected\n\nevent: revoked\ndata: {"code":"UNAUTHORIZED","reason":"session_revoked"}\n\n')
    expect(subs.countOf('sse-u')).toBe(0)

    const leaving = subs.open(owner('sse-u', 's2'))
    const reader = sseResponse(feedOf(() => never), { subscription: leaving }).body!.getReader()
    await reader.read()
    expect(subs.countOf('sse-u')).toBe(1)
    await reader.cancel()
    expect(subs.countOf('sse-u')).toBe(0)
  })

  test('a byte stream made elsewhere, held as a subscription: passed through; ended, it writes its own final bytes and cancels its source', async () => {
    let cancelled = false
    const source = new ReadableStream<Uint8Array>({
      start: (c) => c.enqueue(new TextEncoder().encode('data: one\n\n')),
      cancel: () => void (cancelled = true),
    })
    const sub = subs.open(owner('bytes-u', null, 'k9'))
    const body = subscribedBody(source, sub, (e) => `data: ${JSON.stringify(e.data)}\n\ndata: [DONE]\n\n`)
    setTimeout(() => subs.revoke({ kind: 'api_key', id: 'k9' }), 10)
    expect(await new Response(body).text()).toBe('data: one\n\ndata: {"code":"UNAUTHORIZED","reason":"api_key_revoked"}\n\ndata: [DONE]\n\n')
    expect(cancelled).toBe(true)
    expect(subs.countOf('bytes-u')).toBe(0)
  })
})
