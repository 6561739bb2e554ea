/**
 * Caches across two instances on one Postgres: what B keeps in memory (profiles, model lookups,
 * settings) is dropped through the bus the moment A changes it — well before any timer would
 * have — and B serves the new value.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { register, type Account } from './helpers/accounts.ts'
import { createSecondInstance, createTestApp, type TestApp } from './helpers/app.ts'
import { DIALECTS } from './helpers/db.ts'
import { startFakeLlm, type FakeLlm } from './fakes/llm.ts'

/** Poll until `check` holds, for at most `ms` (less than the 5 s the caches used to be kept). */
async function within(ms: number, check: () => Promise<boolean>) {
  const start = Date.now()
  while (!(await check())) {
    if (Date.now() - start > ms) throw new Error(`not within ${ms} ms`)
    await Bun.sleep(20)
  }
}

for (const dialect of DIALECTS.filter((d) => d === 'postgres')) {
  describe(`caches across two instances [${dialect}]`, () => {
    let fake: FakeLlm
    let a: TestApp
    let b: TestApp
    let admin: Account
    beforeAll(async () => {
      fake = await startFakeLlm()
      a = await createTestApp(dialect)
      b = await createSecondInstance(a)
      admin = await register(a, 'cacheboss')
    })
    afterAll(async () => {
      await b.close()
      await a.close()
      await fake.stop()
    })

    test("a profile changed on A: B's /auth/me shows it at once", async () => {
      expect((await b.request('GET', '/api/v1/auth/me', { token: admin.access })).body.display_name).toBeNull() // cached on B now
      expect((await a.request('PATCH', '/api/v1/users/me', { token: admin.access, body: { display_name: 'Renamed on A' } })).status).toBe(200)
      await within(1000, async () => (await b.request('GET', '/api/v1/auth/me', { token: admin.access })).body.display_name === 'Renamed on A')
    })

    test('a model added on A: B resolves it at once (a miss on B was cached)', async () => {
      const call = (t: TestApp) => t.request('POST', '/v1/chat/completions', { token: admin.access, body: { model: 'late-model', messages: [{ role: 'user', content: 'hi' }] } })
      expect((await call(b)).status).toBe(404) // B now remembers that there is no such model
      // the one model is added by hand, under its own name (no sync of the upstream's list, which has `fake` too)
      const p = await a.request('POST', '/api/v1/providers', { token: admin.access, body: { name: 'fake', type: 'openai_compatible', base_url: `${fake.url}/v1`, api_key: 'k', scope: 'global', sync_models: false } })
      expect((await a.request('POST', '/api/v1/models', { token: admin.access, body: { provider_id: p.body.id, name: 'late-model', model_id: 'fake' } })).status).toBe(201)
      await within(1000, async () => (await call(b)).status !== 404)
      expect((await call(b)).status).toBe(200)
    })

    test('a setting changed on A: B uses it for the next answer at once', async () => {
      const prompt = async () => {
        const c = (await b.request('POST', '/api/v1/conversations', { token: admin.access, body: { model_id: 'late-model' } })).body.id
        await b.request('POST', `/api/v1/conversations/${c}/messages`, { token: admin.access, body: { content: `which prompt? ${c}` } })
        const sent = fake.requests.map((r) => r.body as { messages?: { role: string; content: string }[] }).find((x) => x?.messages?.some((m) => m.content === `which prompt? ${c}`))
        return sent?.messages?.[0]
      }
      expect((await prompt())?.role).toBe('user') // no system prompt yet; B has read the setting as unset
      expect((await a.request('POST', '/api/v1/configs', { token: admin.access, body: { config_group: 'chat', config_name: 'default_system_prompt', config_value: 'Set on A.' } })).status).toBe(201)
      await within(1000, async () => (await prompt())?.content === 'Set on A.')
    })

    test("a user's personal setting changed on A: B's valueFor reads it at once", async () => {
      const user = await register(a, 'cacheuser')
      const read = () => b.deps.services.configs.valueFor(user.id, 'tools', 'requires_approval')
      expect(await read()).toBeNull() // cached on B now
      const set = await a.request('POST', '/api/v1/configs', { token: user.access, body: { config_group: 'tools', config_name: 'requires_approval', config_value: 'http_fetch' } })
      expect(set.body.scope).toBe('personal')
      await within(1000, async () => (await read()) === 'http_fetch')
      await a.request('DELETE', `/api/v1/configs/${set.body.id}`, { token: user.access })
      await within(1000, async () => (await read()) === null)
    })
  })
}
