/**
 * @module Whether a URL points at this machine or a private network: by its host as written
 * (`localhost`, or an IP literal in a loopback, private, link-local or shared range), and, for a
 * host name, by what it resolves to (any of its addresses). A name's answer is kept 30 s, like Bun's
 * own DNS cache for fetch. A name that does not resolve is not private: a call to it fails anyway.
 * What this cannot catch is a name whose answer changes between this check and the connection
 * (DNS rebinding with a zero TTL). Who may reach such addresses anyway: address-policy.ts.
 */
import { isIP, isIPv4, isIPv6 } from 'node:net'

const V4_PRIVATE: [number, number][] = [
  [0x00000000, 8], // 0.0.0.0/8
  [0x0a000000, 8], // 10/8
  [0x64400000, 10], // 100.64/10 (shared)
  [0x7f000000, 8], // 127/8
  [0xa9fe0000, 16], // 169.254/16 (link-local, cloud metadata)
  [0xac100000, 12], // 172.16/12
  [0xc0a80000, 16], // 192.168/16
]

function v4Private(ip: string): boolean {
  const n = ip.split('.').reduce((acc, part) => (acc << 8) + Number(part), 0) >>> 0
  return V4_PRIVATE.some(([base, bits]) => (n & (bits === 0 ? 0 : (~0 << (32 - bits)) >>> 0)) >>> 0 === base)
}

function hostOf(url: string): string | undefined {
  try {
    const host = new URL(url).hostname.toLowerCase()
    if (host.startsWith('[') && host.endsWith(']')) return host.slice(1, -1)
    // `localhost.` is localhost: fetch connects to it, though a lookup of it fails
    return host.replace(/\.+$/, '')
  } catch {
    return undefined
  }
}

const RESOLVED_TTL_MS = 30_000
const resolved = new Map<string, { private: boolean; until: number }>()

/** Whether the URL's host is private as written or resolves to a private address. */
export async function reachesPrivate(url: string): Promise<boolean> {
  const host = hostOf(url)
  if (host === undefined) return false
  if (isPrivateHost(host)) return true
  if (isIP(host)) return false
  const now = Date.now()
  const hit = resolved.get(host)
  if (hit && hit.until > now) return hit.private
  let answer: boolean
  try {
    answer = (await Bun.dns.lookup(host)).some((a) => isPrivateHost(a.address))
  } catch {
    return false // not kept: the name may resolve on the next call
  }
  if (resolved.size >= 1_000) resolved.clear()
  resolved.set(host, { private: answer, until: now + RESOLVED_TTL_MS })
  return answer
}

function isPrivateHost(host: string): boolean {
  if (host === 'localhost' || host.endsWith('.localhost')) return true
  if (isIPv4(host)) return v4Private(host)
  if (isIPv6(host)) {
    if (host === '::1' || host === '::') return true
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(host)
    if (mapped) return v4Private(mapped[1]!)
    // the URL parser writes IPv4-mapped addresses in hex: ::ffff:7f00:1
    const hex = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(host)
    if (hex) {
      const hi = parseInt(hex[1]!, 16)
      const lo = parseInt(hex[2]!, 16)
      return v4Private(`${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`)
    }
    return /^(fc|fd|fe[89ab])/.test(host)
  }
  return false
}
