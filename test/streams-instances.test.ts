/**
 * Ending streams and stopping answers across two instances on one Postgres: a logout on A ends a
 * stream on B; deleting a conversation on A ends its streams on both and makes a re-attach 404
 * where it ran; disabling a user on A stops their answer on B; the cap on running answers counts
 * both instances.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { eq } from 'drizzle-orm'
import { login, register, type Account } from './helpers/accounts.ts'
import { createSecondInstance, createTestApp, type TestApp } from './helpers/app.ts'
import { DIALECTS } from './helpers/db.ts'
import { expectProblem } from './helpers/problems.ts'
import { eventually, follow } from './helpers/streams.ts'
import { startFakeLlm, type FakeLlm } from './fakes/llm.ts'

/** a bus message between instances takes a few ms; allow for a loaded machine */
const PROMPTLY_MS = 1500

for (const dialect of DIALECTS.filter((d) => d === 'postgres')) {
  describe(`streams and answers across two instances [${dialect}]`, () => {
    let fake: FakeLlm
    let a: TestApp
    let b: TestApp
    let servers: ReturnType<typeof Bun.serve>[]
    let admin: Account
    const url = (i: number) => `http://127.0.0.1:${servers[i]!.port}/api/v1`
    const env = { HEARTH_MAX_RUNS_PER_USER: '2' }

    beforeAll(async () => {
      fake = await startFakeLlm()
      a = await createTestApp(dialect, env)
      b = await createSecondInstance(a, env)
      servers = [a, b].map((t) => Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: t.app.fetch, idleTimeout: 30 }))
      admin = await register(a, 'admin')
      const p = await a.request('POST', '/api/v1/providers', { token: admin.access, body: { name: 'fake', type: 'openai_compatible', base_url: `${fake.url}/v1`, api_key: 'k', scope: 'global' } })
      await a.request('POST', '/api/v1/models', { token: admin.access, body: { provider_id: p.body.id, name: 'slow', model_id: 'fake:tokens=400,delay=20', is_default: true } })
    })
    afterAll(async () => {
      for (const s of servers) s.stop(true)
      await b.close()
      await a.close()
      await fake.stop()
    })

    const conversation = async (token: string) => (await a.request('POST', '/api/v1/conversations', { token, body: {} })).body.id as string
    const send = (i: number, token: string, c: string) =>
      fetch(`${url(i)}/conversations/${c}/messages`, { method: 'POST', headers: { authorization: `Bearer ${token}`, accept: 'text/event-stream', 'content-type': 'application/json' }, body: JSON.stringify({ content: 'a long one' }) })
    const reattach = (i: number, token: string, c: string) => fetch(`${url(i)}/conversations/${c}/stream`, { headers: { authorization: `Bearer ${token}` } })
    const answer = async (c: string) => {
      const { db, t } = a.deps.database
      return (await db.select().from(t.messages).where(eq(t.messages.conversationId, c))).find((m) => m.role === 'assistant')
    }

    test("a logout on A ends that session's stream on B at once; another session's stream on B stays", async () => {
      const u = await register(a, 'roaming')
      const second = await login(a, u)
      const c = await conversation(u.access)
      const onB = follow(send(1, u.access, c))
      await onB.started
      const otherOnB = follow(reattach(1, second.access, c))
      await otherOnB.started

      expect((await a.request('POST', '/api/v1/auth/logout', { token: u.access })).status).toBe(204)
      const answered = performance.now()
      const { events, at } = await onB.ended
      expect(at - answered).toBeLessThan(PROMPTLY_MS)
      expect(events.at(-1)).toMatchObject({ event: 'revoked', data: { code: 'UNAUTHORIZED', reason: 'session_revoked' } })
      expect(await otherOnB.openAfter(300)).toBe('open')
      expect((await a.request('POST', `/api/v1/conversations/${c}/stop`, { token: second.access })).body).toEqual({ stopped: true })
      expect((await otherOnB.ended).events.at(-1)).toMatchObject({ event: 'done', data: { finish_reason: 'stopped' } })
    })

    test('deleting on A ends the streams on both instances; a re-attach on B, where it ran, is 404; the run stops', async () => {
      const u = await register(a, 'tidy')
      const c = await conversation(u.access)
      const onB = follow(send(1, u.access, c))
      await onB.started
      await eventually(() => a.deps.services.runs.get(c) !== undefined, 2000, 'A follows the run') // relayed in 25 ms batches
      const onA = follow(reattach(0, u.access, c))
      await onA.started
      const run = b.deps.services.runs.get(c)!

      expect((await a.request('DELETE', `/api/v1/conversations/${c}`, { token: u.access })).status).toBe(204)
      const answered = performance.now()
      for (const s of [onA, onB]) {
        const { events, at } = await s.ended
        expect(at - answered).toBeLessThan(PROMPTLY_MS)
        expect(events.at(-1)).toMatchObject({ event: 'deleted', data: { code: 'NOT_FOUND', reason: 'conversation_deleted' } })
      }
      expectProblem(await a.request('GET', `/api/v1/conversations/${c}/stream`, { token: u.access }), 404, 'NOT_FOUND')
      // B hears of the deletion over the bus; by the time its stream has ended, it has
      expectProblem(await b.request('GET', `/api/v1/conversations/${c}/stream`, { token: u.access }), 404, 'NOT_FOUND')
      await eventually(() => run.done, 2000, 'the run on B ended')
      expect(run.events.at(-1)).toMatchObject({ event: 'done', data: { finish_reason: 'stopped' } })
    })

    test('disabling a user on A ends their stream on B and stops the answer B runs: saved as stopped', async () => {
      const u = await register(a, 'banned')
      const c = await conversation(u.access)
      const onB = follow(send(1, u.access, c))
      await onB.started
      expect((await a.request('PATCH', `/api/v1/admin/users/${u.id}`, { token: admin.access, body: { is_active: false } })).status).toBe(200)
      const answered = performance.now()
      const { events, at } = await onB.ended
      expect(at - answered).toBeLessThan(PROMPTLY_MS)
      expect(events.at(-1)).toMatchObject({ event: 'revoked', data: { reason: 'session_revoked' } })
      await eventually(async () => (await answer(c))?.status === 'stopped', 3000, 'the answer saved as stopped')
      expect((await answer(c))!.content.length).toBeGreaterThan(0)
    })

    test('HEARTH_MAX_RUNS_PER_USER counts the answers running on every instance', async () => {
      const u = await register(a, 'everywhere')
      const [c1, c2, c3] = [await conversation(u.access), await conversation(u.access), await conversation(u.access)]
      const onA = follow(send(0, u.access, c1))
      const onB = follow(send(1, u.access, c2))
      await Promise.all([onA.started, onB.started])
      for (const t of [a, b]) expectProblem(await t.request('POST', `/api/v1/conversations/${c3}/messages`, { token: u.access, body: { content: 'one too many' } }), 429, 'RATE_LIMITED')
      expect((await b.request('POST', `/api/v1/conversations/${c1}/stop`, { token: u.access })).body).toEqual({ stopped: true })
      await onA.ended
      const third = follow(send(1, u.access, c3))
      await third.started
      for (const c of [c2, c3]) await a.request('POST', `/api/v1/conversations/${c}/stop`, { token: u.access })
      await Promise.all([onB.ended, third.ended])
    })
  })
}
