/**
 * A browser's EventSource on GET /chat/stream (Chromium through playwright-core): it reconnects by
 * itself after the stream ends, with Last-Event-ID; the reconnect must not ask the model again.
 */
import { afterAll, beforeAll, expect, test } from 'bun:test'
import { register, type Account } from './helpers/accounts.ts'
import { createTestApp, type TestApp } from './helpers/app.ts'
import { browserAvailable, openBrowser } from './helpers/browser.ts'
import { eachDialect } from './helpers/db.ts'
import { startFakeLlm, type FakeLlm } from './fakes/llm.ts'

const QUESTION = 'Hello from a real browser'

if (browserAvailable('EventSource in Chromium'))
  eachDialect('EventSource in Chromium', (dialect) => {
    let t: TestApp
    let fake: FakeLlm
    let server: ReturnType<typeof Bun.serve>
    let origin: string
    let a: Account

    beforeAll(async () => {
      fake = await startFakeLlm()
      t = await createTestApp(dialect)
      server = Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: t.app.fetch, idleTimeout: 30 })
      origin = `http://127.0.0.1:${server.port}`
      a = await register(t, 'browser')
      const p = await t.request('POST', '/api/v1/providers', { token: a.access, body: { name: 'fake', type: 'openai_compatible', base_url: `${fake.url}/v1`, api_key: 'k', scope: 'global' } })
      await t.request('POST', '/api/v1/models', { token: a.access, body: { provider_id: p.body.id, name: 'paced', model_id: 'fake:tokens=6,delay=30', is_default: true } })
    })
    afterAll(async () => {
      server.stop(true)
      await t.close()
      await fake.stop()
    })

    const answerCalls = () => fake.requests.filter((r) => (r.body as { messages?: { role: string; content: string }[] } | undefined)?.messages?.at(-1)?.content === QUESTION).length

    test('left open for 10 s after done: one conversation, one model call, and the EventSource stops on the 204', async () => {
      const browser = await openBrowser(origin)
      try {
        await browser.context.addCookies([{ name: 'hearth_access', value: a.access, url: origin, httpOnly: true }])
        await browser.page.goto(`${origin}/health`) // any page of the server's own origin
        const seen = await browser.page.evaluate(async (query) => {
          const log: { type: string; id?: string; data?: string; readyState?: number }[] = []
          const source = new EventSource(`/api/v1/chat/stream?query=${encodeURIComponent(query)}`)
          source.addEventListener('open', () => log.push({ type: 'open' }))
          for (const type of ['message.created', 'delta', 'usage', 'done']) source.addEventListener(type, (e) => log.push({ type, id: (e as MessageEvent).lastEventId, data: (e as MessageEvent).data }))
          source.addEventListener('error', () => log.push({ type: 'error', readyState: source.readyState }))
          await new Promise<void>((resolve) => source.addEventListener('done', () => resolve()))
          await new Promise((resolve) => setTimeout(resolve, 10_000)) // EventSource retries after ~3 s on its own
          log.push({ type: 'end', readyState: source.readyState })
          source.close()
          return log
        }, QUESTION)

        const types = seen.map((e) => e.type)
        expect(types.filter((x) => x === 'open')).toHaveLength(1)
        expect(types.filter((x) => x === 'message.created')).toHaveLength(1)
        expect(types.filter((x) => x === 'done')).toHaveLength(1)
        expect(types.filter((x) => x === 'delta')).toHaveLength(6)
        // the reconnect after done was answered 204: EventSource gave up (CLOSED = 2) instead of retrying
        expect(seen.at(-1)).toEqual({ type: 'end', readyState: 2 })
        const list = await t.request('GET', '/api/v1/conversations', { token: a.access })
        expect(list.body.total).toBe(1)
        expect(answerCalls()).toBe(1)
        // and nothing else reached the model but the conversation's title (one call, before done)
        expect(fake.requests.filter((r) => r.path.endsWith('/chat/completions'))).toHaveLength(2)
      } finally {
        await browser.close()
      }
    }, 30_000)
  })
