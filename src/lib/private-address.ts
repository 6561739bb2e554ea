/**
 * @module Whether a URL points at this machine or a private network, by its host as written
 * (`localhost`, or an IP literal in a loopback, private, link-local or shared range). Names that
 * resolve to such addresses are not caught: this stops the plain cases of a user aiming the server
 * at internal services, not DNS tricks.
 */
import { isIPv4, isIPv6 } from 'node:net'

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

export function isPrivateUrl(url: string): boolean {
  let host: string
  try {
    host = new URL(url).hostname.toLowerCase()
  } catch {
    return false
  }
  if (host === 'localhost' || host.endsWith('.localhost')) return true
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1)
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
