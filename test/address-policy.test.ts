/**
 * The private-address policy (src/lib/address-policy.ts; docs/api.md §7 "Private addresses"):
 * who may aim the server at loopback and private addresses, directly, without HTTP or a database.
 */
import { describe, expect, test } from 'bun:test'
import { createAddressPolicy } from '../src/lib/address-policy.ts'
import { privateName } from './helpers/private-name.ts'

const user = { role: 'user' }
const admin = { role: 'admin' }
const strict = createAddressPolicy({ allowPrivate: false })

const PRIVATE = ['http://127.0.0.1:11434/v1', 'http://10.1.2.3/v1', 'http://192.168.1.5/v1', 'http://169.254.169.254/latest', 'http://[::1]:8080/v1', 'http://localhost:8000/v1', 'http://api.localhost/v1', 'http://localhost.:8000/v1', 'http://api.localhost./v1']
const PUBLIC = ['http://172.32.0.1/v1', 'https://93.184.216.34/v1', 'http://[2606:4700::1111]/v1']

/** The 422 that names the field (the same for every caller of the policy). */
const refusal = (field: string) => ({
  status: 422,
  code: 'VALIDATION_ERROR',
  detail: 'Only admins may use loopback or private addresses',
  errors: [{ path: field, message: 'loopback and private addresses (also by a name that resolves to one) are for admins' }],
})

describe('address policy: a user, private addresses not allowed', () => {
  test.each(PRIVATE)('%s is refused: isRefused, and a 422 naming the field', async (url) => {
    expect(await strict.isRefused(user, url)).toBe(true)
    await expect(strict.assertAllowed(user, url, 'base_url')).rejects.toMatchObject(refusal('base_url'))
  })

  test('a host name is judged by what it resolves to', async () => {
    const url = `http://${await privateName()}:9/v1`
    expect(await strict.isRefused(user, url)).toBe(true)
    // written fully qualified, it is the same name
    expect(await strict.isRefused(user, `http://${await privateName()}.:9/v1`)).toBe(true)
    await expect(strict.assertAllowed(user, url, 'server_url')).rejects.toMatchObject(refusal('server_url'))
  })

  test.each(PUBLIC)('%s is allowed', async (url) => {
    expect(await strict.isRefused(user, url)).toBe(false)
    expect(await strict.assertAllowed(user, url, 'base_url')).toBeUndefined()
  })

  test('no URL has nothing to check', async () => {
    expect(await strict.assertAllowed(user, null, 'base_url')).toBeUndefined()
    expect(await strict.assertAllowed(user, undefined, 'base_url')).toBeUndefined()
    expect(strict.mayReachPrivate(user)).toBe(false)
  })
})

describe('address policy: who may reach private addresses', () => {
  test('an admin may', async () => {
    expect(strict.mayReachPrivate(admin)).toBe(true)
    for (const url of [...PRIVATE, `http://${await privateName()}:9/v1`]) {
      expect(await strict.isRefused(admin, url)).toBe(false)
      expect(await strict.assertAllowed(admin, url, 'base_url')).toBeUndefined()
    }
  })

  test('everyone may when the instance allows private addresses', async () => {
    const open = createAddressPolicy({ allowPrivate: true })
    expect(open.mayReachPrivate(user)).toBe(true)
    for (const url of [...PRIVATE, `http://${await privateName()}:9/v1`]) {
      expect(await open.isRefused(user, url)).toBe(false)
      expect(await open.assertAllowed(user, url, 'base_url')).toBeUndefined()
    }
  })
})
