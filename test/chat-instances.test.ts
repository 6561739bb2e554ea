/**
 * Chat runs seen from another instance on the same Postgres: re-attach on B to a run that A is
 * running (LISTEN/NOTIFY relay), stop it from B, and the one-run rule across instances.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { register, type Account } from './helpers/accounts.ts'
import { createSecondInstance, createTestApp, type TestApp } from './helpers/app.ts'
import { DIALECTS } from './helpers/db.ts'
import { readEvents, textOf } from './helpers/sse.ts'
import { startFakeLlm, type FakeLlm } from './fakes/llm.ts'

for (const dialect of DIALECTS.filter((d) => d === 'postgres')) {
  describe(`chat across two instances [${dialect}]`, () => {
    let fake: FakeLlm
    let a: TestApp
    let b: TestApp
    let servers: ReturnType<typeof Bun.serve>[]
    let user: Account
    const url = (i: number) => `http://127.0.0.1:${servers[i]!.port}/api/v1`

    beforeAll(async () => {
      fake = await startFakeLlm()
      a = await createTestApp(dialect)
      b = await createSecondInstance(a)
      servers = [a, b].map((t) => Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: t.app.fetch, idleTimeout: 30 }))
      user = await register(a, 'multichat')
      const p = await a.request('POST', '/api/v1/providers', { token: user.access, body: { name: 'fake', type: 'openai_compatible', base_url: `${fake.url}/v1`, api_key: 'k', scope: 'global' } })
      await a.request('POST', '/api/v1/models', { token: user.access, body: { provider_id: p.body.id, name: 'long', model_id: 'fake:tokens=40,delay=25', is_default: true } })
    })
    afterAll(async () => {
      for (const s of servers) s.stop(true)
      await b.close()
      await a.close()
      await fake.stop()
    })

    const start = async (conversation: string, signal?: AbortSignal) =>
      fetch(`${url(0)}/conversations/${conversation}/messages`, { method: 'POST', headers: { authorization: `Bearer ${user.access}`, accept: 'text/event-stream', 'content-type': 'application/json' }, body: JSON.stringify({ content: 'a long one' }), signal })

    test('re-attach on B to the run on A: the missed events, then the live ones, exactly once', async () => {
      const c = (await a.request('POST', '/api/v1/conversations', { token: user.access, body: {} })).body.id
      const controller = new AbortController()
      const first = await readEvents(await start(c, controller.signal), (e) => e.id === 5)
      controller.abort()
      const res = await fetch(`${url(1)}/conversations/${c}/stream`, { headers: { authorization: `Bearer ${user.access}`, 'last-event-id': '5' } })
      expect(res.status).toBe(200)
      const rest = await readEvents(res)
      const all = [...first, ...rest]
      expect(all.map((e) => e.id)).toEqual(all.map((_, i) => i + 1))
      expect(all.at(-1)!.event).toBe('done')
      const stored = (await b.request('GET', `/api/v1/conversations/${c}`, { token: user.access })).body.messages.at(-1)
      expect(stored.content).toBe(textOf(all))
      expect(stored.status).toBe('complete')
    })

    test('a 100,000-character message reaches B whole: re-attaching there replays message.created and every event', async () => {
      const c = (await a.request('POST', '/api/v1/conversations', { token: user.access, body: {} })).body.id
      const content = 'long question '.repeat(7143).slice(0, 100_000)
      const res = await fetch(`${url(0)}/conversations/${c}/messages`, {
        method: 'POST',
        headers: { authorization: `Bearer ${user.access}`, accept: 'text/event-stream', 'content-type': 'application/json' },
        body: JSON.stringify({ content }),
      })
      const onA = await readEvents(res)
      expect(onA.at(-1)!.event).toBe('done')
      const replay = await fetch(`${url(1)}/conversations/${c}/stream`, { headers: { authorization: `Bearer ${user.access}`, 'last-event-id': '0' } })
      expect(replay.status).toBe(200)
      const onB = await readEvents(replay)
      expect(onB.map((e) => [e.id, e.event])).toEqual(onA.map((e) => [e.id, e.event]))
      expect(onB[0]!.data.user_message.content).toBe(content)
    })

    test('B refuses a second send while A runs one (409), and B can stop it', async () => {
      const c = (await a.request('POST', '/api/v1/conversations', { token: user.access, body: {} })).body.id
      const running = readEvents(await start(c), (e) => e.event === 'done')
      await Bun.sleep(100)
      const second = await b.request('POST', `/api/v1/conversations/${c}/messages`, { token: user.access, body: { content: 'me too' } })
      expect([second.status, second.body.code]).toEqual([409, 'CONFLICT'])
      expect((await b.request('POST', `/api/v1/conversations/${c}/stop`, { token: user.access })).body).toEqual({ stopped: true })
      const events = await running
      expect(events.at(-1)!.data.finish_reason).toBe('stopped')
      const stored = (await a.request('GET', `/api/v1/conversations/${c}`, { token: user.access })).body.messages.at(-1)
      expect(stored.status).toBe('stopped')
      expect(stored.content).toBe(textOf(events))
    })
  })
}
