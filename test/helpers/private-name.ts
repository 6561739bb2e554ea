/** This machine's own host name, for tests of names that resolve to private addresses. */
import { expect } from 'bun:test'
import { hostname } from 'node:os'

/** This machine's host name, which resolves (through /etc/hosts) to one of its loopback or private addresses. */
export async function privateName(): Promise<string> {
  const name = hostname()
  const addresses = (await Bun.dns.lookup(name)).map((a) => a.address)
  // the tests that use it rely on this; a machine whose name resolves to a public address cannot run them
  expect(addresses.some((a) => /^(127\.|10\.|192\.168\.|172\.(1[6-9]|2\d|3[01])\.|::1$|f[cd])/.test(a))).toBe(true)
  return name
}
