/**
 * A task survives its process (docs/api.md §16): the real server is killed with SIGKILL while an
 * agent task is between tool rounds, a new process starts on the same data dir / database, claims
 * the task once its (short, HEARTH_TASK_LEASE_MS) lease has run out, rebuilds the conversation from
 * the recorded steps and completes it: finished turns and results are not redone, no step is
 * duplicated. Then SIGTERM: a running task is handed back at once (pending, not an attempt).
 */
import { afterAll, describe, expect, test } from 'bun:test'
import { readEvents } from './helpers/sse.ts'
import { startFakeLlm, type FakeLlm } from './fakes/llm.ts'
import { DIALECTS } from './helpers/db.ts'
import { callServer as call, serverProcesses } from './helpers/server-process.ts'

type Json = Record<string, any>

const servers = serverProcesses()
let fake: FakeLlm | undefined
afterAll(() => fake?.stop())

for (const dialect of DIALECTS) {
  describe(`tasks crash safety, real server process [${dialect}]`, () => {
    test(
      'SIGKILL between tool rounds: a new process resumes the task from its steps and completes it, no step duplicated; SIGTERM hands a running task back',
      async () => {
        fake ??= await startFakeLlm()
        const env = await servers.environment(dialect, { HEARTH_TASK_LEASE_MS: '1500' })

        const first = await servers.start(env)
        const setupToken = /"setup_token":"(hst_[\w-]+)"/.exec(first.output())?.[1]
        const reg = await call(first.base, 'POST', '/api/v1/auth/register', undefined, { username: 'taskadmin', email: 'taskadmin@example.com', password: 'task-admin-password', setup_token: setupToken })
        expect(reg.status).toBe(201)
        const token = reg.body.tokens.access_token as string
        const provider = await call(first.base, 'POST', '/api/v1/providers', token, { name: 'fake', type: 'openai_compatible', base_url: `${fake.url}/v1`, api_key: 'k', scope: 'global' })
        expect(provider.status).toBe(201)
        // three rounds of tool calls, each turn streaming for ~0.6 s, then an answer
        const model = await call(first.base, 'POST', '/api/v1/models', token, { provider_id: provider.body.id, name: 'agent-model', model_id: 'fake:tokens=30,delay=20,calls=current_time,rounds=3', is_default: true })
        expect(model.status).toBe(201)
        const created = await call(first.base, 'POST', '/api/v1/tasks', token, { prompt: 'Check the time three times', tools: ['current_time'], max_steps: 10 })
        expect(created.status).toBe(202)
        const id = created.body.id as string

        // kill right after the first round's result is stored
        const res = await fetch(`${first.base}/api/v1/tasks/${id}/events`, { headers: { authorization: `Bearer ${token}` } })
        const before = await readEvents(res, (e) => {
          if (e.event !== 'tool_result') return false
          first.proc.kill('SIGKILL')
          return true
        })
        expect(await first.proc.exited).not.toBe(0)
        const lastSeen = before.filter((e) => e.id !== undefined).at(-1)!.id!
        const requestsBefore = fake.requests.length

        const second = await servers.start(env)
        const after = await readEvents(await fetch(`${second.base}/api/v1/tasks/${id}/events`, { headers: { authorization: `Bearer ${token}`, 'last-event-id': String(lastSeen) } }))
        expect(after.at(-1)?.event).toBe('task_completed')
        const task = (await call(second.base, 'GET', `/api/v1/tasks/${id}`, token)).body as Json
        expect(task).toMatchObject({ status: 'completed', attempts: 2 })
        const steps = (await call(second.base, 'GET', `/api/v1/tasks/${id}/steps?limit=500`, token)).body.items as Json[]
        expect(steps.map((s) => s.seq)).toEqual(steps.map((_, i) => i + 1))
        const names = steps.map((s) => s.step)
        expect(names.filter((n) => n === 'task_started')).toHaveLength(2)
        // each of the three rounds once, then the answer: the first round was not redone
        expect(names.filter((n) => n === 'tool_called')).toHaveLength(3)
        expect(names.filter((n) => n === 'tool_result')).toHaveLength(3)
        expect(names.filter((n) => n === 'agent_message')).toHaveLength(4)
        expect(new Set(steps.filter((s) => s.step === 'tool_result').map((s) => s.data.id)).size).toBe(3)
        // the resumed process sent round 2 onwards only (a turn interrupted mid-stream would be sent again)
        expect(fake.requests.length - requestsBefore).toBeLessThanOrEqual(3)
        const resumedAt = names.lastIndexOf('task_started')
        expect(names.slice(0, resumedAt).filter((n) => n === 'tool_result')).toHaveLength(1)

        // SIGTERM while a task runs: it is handed back at once (pending, not counted as an attempt)
        const hang = await call(second.base, 'POST', '/api/v1/models', token, { provider_id: provider.body.id, name: 'hang', model_id: 'fake:hang=30000' })
        expect(hang.status).toBe(201)
        const running = await call(second.base, 'POST', '/api/v1/tasks', token, { prompt: 'wait', model_id: 'hang' })
        // running, and its task_started recorded (a hand-back before that would leave nothing to tell the attempts apart)
        for (let i = 0; i < 250 && (await call(second.base, 'GET', `/api/v1/tasks/${running.body.id}/steps?step=task_started`, token)).body.total !== 1; i++) await Bun.sleep(20)
        expect((await call(second.base, 'GET', `/api/v1/tasks/${running.body.id}`, token)).body).toMatchObject({ status: 'running', attempts: 1 })
        const stopAt = performance.now()
        second.proc.kill('SIGTERM')
        expect(await second.proc.exited).toBe(0)
        expect(performance.now() - stopAt).toBeLessThan(5000)
        const third = await servers.start({ ...env, HEARTH_TASK_CONCURRENCY: '1' })
        const seen = await readEvents(await fetch(`${third.base}/api/v1/tasks/${running.body.id}/events`, { headers: { authorization: `Bearer ${token}` } }), (e) => e.event === 'task_started' && e.data.attempt === 1 && e.id! > 1)
        // claimed again as attempt 1: the hand-back did not count
        expect(seen.filter((e) => e.event === 'task_started').map((e) => e.data.attempt)).toEqual([1, 1])
        third.proc.kill('SIGKILL')
        await third.proc.exited
      },
      { timeout: 90_000 },
    )
  })
}
