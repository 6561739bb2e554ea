/**
 * Crash safety of streaming chat (docs/api.md §11: "a crash mid-stream leaves it status: error with the
 * text so far, never a lost user message"): the real server process is killed with SIGKILL while
 * an answer streams over real HTTP, then a new process starts on the same data dir / database.
 */
import { afterAll, describe, expect, test } from 'bun:test'
import { readEvents, textOf, type ReceivedEvent } from './helpers/sse.ts'
import { startFakeLlm, type FakeLlm } from './fakes/llm.ts'
import { DIALECTS } from './helpers/db.ts'
import { callServer as call, serverProcesses } from './helpers/server-process.ts'

const TOKENS = 200
const FULL_TEXT = Array.from({ length: TOKENS }, (_, i) => `tok${i} `).join('')
/** deltas to read before the kill (≈ 40 × 20 ms: several 250 ms flushes have happened) */
const DELTAS_BEFORE_KILL = 40
/** the answer is written every 250 ms; a delta the client had this long before the kill must be stored */
const FLUSHED_AFTER_MS = 400
type Json = Record<string, any>

const servers = serverProcesses()
let fake: FakeLlm | undefined
afterAll(() => fake?.stop())

for (const dialect of DIALECTS) {
  describe(`chat crash safety, real server process [${dialect}]`, () => {
    test(
      'SIGKILL mid-stream: the question is kept, the partial answer is stored as error, and the conversation works again',
      async () => {
        fake ??= await startFakeLlm()
        const env = await servers.environment(dialect)

        // --- the first process: set up, start a long answer, kill it mid-stream -----------------
        const first = await servers.start(env)
        // the first account is the admin: it presents the setup token from the start log
        const setupToken = /"setup_token":"(hst_[\w-]+)"/.exec(first.output())?.[1]
        expect(setupToken).toBeDefined()
        const reg = await call(first.base, 'POST', '/api/v1/auth/register', undefined, { username: 'crashadmin', email: 'crashadmin@example.com', password: 'crash-admin-password', setup_token: setupToken })
        expect({ status: reg.status, body: reg.body }).toMatchObject({ status: 201 })
        const token = reg.body.tokens.access_token as string
        const provider = await call(first.base, 'POST', '/api/v1/providers', token, { name: 'fake', type: 'openai_compatible', base_url: `${fake.url}/v1`, api_key: 'k', scope: 'global' })
        expect({ status: provider.status, body: provider.body }).toMatchObject({ status: 201 })
        const slow = await call(first.base, 'POST', '/api/v1/models', token, { provider_id: provider.body.id, name: 'chat-model', model_id: `fake:tokens=${TOKENS},delay=20`, is_default: true })
        expect({ status: slow.status, body: slow.body }).toMatchObject({ status: 201 })
        const quick = await call(first.base, 'POST', '/api/v1/models', token, { provider_id: provider.body.id, name: 'quick', model_id: 'fake:tokens=5' })
        expect(quick.status).toBe(201)
        const conversation = await call(first.base, 'POST', '/api/v1/conversations', token, { title: 'Crash me' })
        expect(conversation.status).toBe(201)
        const id = conversation.body.id as string

        const res = await fetch(`${first.base}/api/v1/conversations/${id}/messages`, {
          method: 'POST',
          headers: { authorization: `Bearer ${token}`, accept: 'text/event-stream', 'content-type': 'application/json' },
          body: JSON.stringify({ content: 'Please tell me a very long story' }),
        })
        expect(res.status).toBe(200)
        let killedAt = 0
        const events: ReceivedEvent[] = await readEvents(res, (e, all) => {
          if (all.filter((x) => x.event === 'delta').length < DELTAS_BEFORE_KILL) return false
          first.proc.kill('SIGKILL')
          killedAt = e.at
          return true
        }).catch((error) => {
          throw new Error(`the stream failed before the kill: ${error}\n${first.output()}`)
        })
        expect(killedAt).toBeGreaterThan(0)
        expect(await first.proc.exited).not.toBe(0)
        expect(first.proc.signalCode).toBe('SIGKILL')
        expect(events[0]!.event).toBe('message.created')
        const userMessage = events[0]!.data.user_message as Json
        const assistantId = events[0]!.data.assistant_message_id as string
        expect(events.some((e) => e.event === 'done')).toBe(false)
        const seen = textOf(events)
        expect(seen).toStartWith('tok0 tok1 ')
        /** what the client had long enough before the kill that a flush must have written it */
        const surelyFlushed = textOf(events.filter((e) => e.event !== 'delta' || e.at <= killedAt - FLUSHED_AFTER_MS))

        // --- the second process on the same data dir / database ---------------------------------
        const second = await servers.start(env)
        // the access token still works: the signing secret lives in the data dir
        const view = async () => {
          const r = await call(second.base, 'GET', `/api/v1/conversations/${id}`, token)
          expect({ status: r.status, body: r.body }).toMatchObject({ status: 200 })
          return r.body as Json
        }
        let got = await view()
        // SQLite: this process is the only writer, so it marks them at start, before the first request
        if (dialect === 'sqlite') expect(got.messages.at(-1)?.status).toBe('error')
        // Postgres: several instances may share the database, so an answer counts as interrupted
        // once it has not been written for 30 s, found by a sweep every 30 s
        const restartedAt = Date.now()
        while (got.messages.at(-1)?.status === 'streaming' && Date.now() - restartedAt < 75_000) {
          await Bun.sleep(500)
          got = await view()
        }
        const recoveredAfter = Date.now() - restartedAt
        if (recoveredAfter > 1000) console.info(`[${dialect}] the interrupted answer was marked error ${recoveredAfter} ms after the restart`)

        expect(got).toMatchObject({ id, title: 'Crash me', message_count: 2 })
        expect(got.messages).toHaveLength(2)
        const [question, answer] = got.messages as Json[]
        expect(question).toMatchObject({ id: userMessage.id, role: 'user', content: 'Please tell me a very long story', status: 'complete', parent_id: null })
        expect(answer).toMatchObject({ id: assistantId, role: 'assistant', status: 'error', parent_id: userMessage.id })
        const stored = answer!.content as string
        // a non-empty prefix of the full answer, holding everything but (at most) the last unflushed batch
        expect(stored).toStartWith('tok0 tok1 ')
        expect(FULL_TEXT.startsWith(stored)).toBe(true)
        expect(stored.length).toBeLessThan(FULL_TEXT.length)
        expect(stored.length).toBeGreaterThanOrEqual(surelyFlushed.length)
        expect(stored.startsWith(seen) || seen.startsWith(stored)).toBe(true)

        // nothing is running any more; no 409 is left over: a new send works
        expect((await fetch(`${second.base}/api/v1/conversations/${id}/stream`, { headers: { authorization: `Bearer ${token}` } })).status).toBe(204)
        expect((await call(second.base, 'POST', `/api/v1/conversations/${id}/stop`, token)).body).toEqual({ stopped: false })
        const again = await call(second.base, 'POST', `/api/v1/conversations/${id}/messages`, token, { content: 'Are you back?', model_id: 'quick' })
        expect({ status: again.status, body: again.body }).toMatchObject({ status: 201 })
        expect(again.body.user_message).toMatchObject({ role: 'user', content: 'Are you back?', parent_id: assistantId })
        expect(again.body.assistant_message).toMatchObject({ role: 'assistant', status: 'complete', content: 'tok0 tok1 tok2 tok3 tok4 ' })
        got = await view()
        expect(got.message_count).toBe(4)
        expect((got.messages as Json[]).map((m) => [m.role, m.status])).toEqual([
          ['user', 'complete'],
          ['assistant', 'error'],
          ['user', 'complete'],
          ['assistant', 'complete'],
        ])
        // the new answer's context skipped the broken one
        const sent = fake.requests.map((r) => r.body as { messages?: { role: string; content: string }[] }).find((b) => b?.messages?.some((m) => m.content === 'Are you back?'))
        expect(sent?.messages?.map((m) => m.role)).toEqual(['user', 'user'])

        second.proc.kill('SIGTERM')
        expect(await second.proc.exited).toBe(0)
      },
      { timeout: 150_000 },
    )
  })
}
