/** Groups in tests: a fake upstream's models, a group, a membership. */
import { expect } from 'bun:test'
import type { TestApp, TestResponse } from './app.ts'
import type { FakeLlm } from '../fakes/llm.ts'

export type Json = Record<string, any>

export const ok = (r: TestResponse, status = 200) => {
  expect({ status: r.status, body: r.body }).toMatchObject({ status })
  return r.body as Json
}

/** A fake upstream with one global provider and models alpha (the instance default), beta and gamma. */
export async function withModels(t: TestApp, admin: string, fake: FakeLlm) {
  const p = ok(await t.request('POST', '/api/v1/providers', { token: admin, body: { name: 'fake', type: 'openai_compatible', base_url: `${fake.url}/v1`, api_key: 'k', scope: 'global' } }), 201)
  const ids: Record<string, string> = {}
  for (const [name, def, n] of [['alpha', true, 3], ['beta', false, 4], ['gamma', false, 5]] as const) {
    ids[name] = ok(await t.request('POST', '/api/v1/models', { token: admin, body: { provider_id: p.id, name, model_id: `fake:tokens=${n}`, is_default: def } }), 201).id
  }
  return ids
}

export const groupOf = async (t: TestApp, admin: string, name: string, settings: Json = {}) => ok(await t.request('POST', '/api/v1/groups', { token: admin, body: { name, settings } }), 201)
export const join = async (t: TestApp, admin: string, groupId: string, userId: string, role = 'member') => ok(await t.request('POST', `/api/v1/groups/${groupId}/members`, { token: admin, body: { user_id: userId, role } }), 201)
