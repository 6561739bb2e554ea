/**
 * @module Which IP addresses a user may aim the server at: global unicast ones, and none of this
 * machine's own. Refused: every range of the IANA special-purpose address registries for IPv4 and
 * IPv6 that is not globally reachable, IPv4 multicast, the reserved 240/4 with the broadcast
 * address, all of IPv6 outside 2000::/3 (loopback, unspecified, unique-local, link-local,
 * multicast, …), and every address of this machine's network interfaces. An IPv4 address carried
 * in IPv6 — mapped (::ffff:0:0/96), which the kernel connects to over IPv4, or NAT64 (64:ff9b::/96),
 * which a translator connects to — is judged as that IPv4 address; the other IPv6 forms that
 * embed one (IPv4-compatible ::/96, SIIT ::ffff:0:0:0/96, local NAT64 64:ff9b:1::/48, 6to4
 * 2002::/16) are refused whole. Range arithmetic is node:net's BlockList.
 */
import { BlockList, isIPv4, isIPv6 } from 'node:net'
import { networkInterfaces } from 'node:os'

/** IPv4 ranges that are not global unicast (IANA IPv4 special-purpose registry, plus multicast). */
const V4_NOT_GLOBAL: [string, number][] = [
  ['0.0.0.0', 8], // "this network"; 0.0.0.0 itself reaches this machine
  ['10.0.0.0', 8], // private
  ['100.64.0.0', 10], // shared address space (carrier-grade NAT)
  ['127.0.0.0', 8], // loopback
  ['169.254.0.0', 16], // link-local, where cloud metadata services answer
  ['172.16.0.0', 12], // private
  ['192.0.0.0', 24], // IETF protocol assignments
  ['192.0.2.0', 24], // documentation (TEST-NET-1)
  ['192.88.99.0', 24], // 6to4 relay anycast (deprecated)
  ['192.168.0.0', 16], // private
  ['198.18.0.0', 15], // benchmarking
  ['198.51.100.0', 24], // documentation (TEST-NET-2)
  ['203.0.113.0', 24], // documentation (TEST-NET-3)
  ['224.0.0.0', 4], // multicast
  ['240.0.0.0', 4], // reserved, and 255.255.255.255 (limited broadcast)
]

/** IPv6 global unicast is 2000::/3; inside it, these ranges of the IANA IPv6 special-purpose registry are not. */
const V6_NOT_GLOBAL_IN_2000: [string, number][] = [
  ['2001::', 23], // IETF protocol assignments: Teredo, benchmarking, ORCHID, … (refused whole)
  ['2001:db8::', 32], // documentation
  ['2002::', 16], // 6to4: a tunnel to whichever IPv4 address it embeds
  ['3fff::', 20], // documentation (RFC 9637)
]

const subnets = (ranges: [string, number][], family: 'ipv4' | 'ipv6') => {
  const list = new BlockList()
  for (const [net, bits] of ranges) list.addSubnet(net, bits, family)
  return list
}

// Each list is asked only about addresses of its own family: BlockList matches an IPv6-mapped
// address against IPv4 rules, and an IPv4 address against ::ffff:0:0/96.
const v4NotGlobal = subnets(V4_NOT_GLOBAL, 'ipv4')
const v6GlobalUnicast = subnets([['2000::', 3]], 'ipv6')
const v6NotGlobal = subnets(V6_NOT_GLOBAL_IN_2000, 'ipv6')
const v6CarriesV4 = subnets([['::ffff:0:0', 96], ['64:ff9b::', 96]], 'ipv6')

/** A set of addresses, whichever way each is written. */
export interface AddressSet {
  has(address: string): boolean
}

export function addressSet(addresses: Iterable<string>): AddressSet {
  const v4 = new BlockList()
  const v6 = new BlockList()
  for (const a of addresses) {
    const ip = withoutZone(a)
    if (isIPv4(ip)) v4.addAddress(ip, 'ipv4')
    else if (isIPv6(ip)) v6.addAddress(ip, 'ipv6')
  }
  return { has: (a) => (isIPv4(a) ? v4.check(a, 'ipv4') : isIPv6(a) && v6.check(a, 'ipv6')) }
}

const INTERFACES_TTL_MS = 5_000

/** The addresses of this machine's network interfaces, read again at most every 5 s (addresses come and go). */
export const thisMachine: AddressSet = (() => {
  let set: AddressSet | undefined
  let readAt = 0
  return {
    has(address) {
      const now = Date.now()
      if (!set || now - readAt > INTERFACES_TTL_MS) {
        set = addressSet(Object.values(networkInterfaces()).flatMap((list) => (list ?? []).map((i) => i.address)))
        readAt = now
      }
      return set.has(address)
    },
  }
})()

/** Whether `address` (an IP literal, without brackets) is global unicast and not one of `own`. Anything else, a name included, is not. */
export function isGlobalUnicast(address: string, own: AddressSet = thisMachine): boolean {
  const ip = withoutZone(address)
  if (isIPv4(ip)) return !v4NotGlobal.check(ip, 'ipv4') && !own.has(ip)
  if (!isIPv6(ip)) return false
  if (v6CarriesV4.check(ip, 'ipv6')) return isGlobalUnicast(lastIPv4Of(ip), own)
  return v6GlobalUnicast.check(ip, 'ipv6') && !v6NotGlobal.check(ip, 'ipv6') && !own.has(ip)
}

/** `fe80::1%eth0` → `fe80::1` */
const withoutZone = (address: string) => address.replace(/%.*$/, '')

/** The IPv4 address in the last 32 bits of an IPv6 address (one of ::ffff:0:0/96 or 64:ff9b::/96). */
function lastIPv4Of(ip6: string): string {
  // The URL parser writes any IPv6 form, a dotted tail included, as compressed hex groups. In those
  // two ranges a `::` never stands for the last two groups unless they are zero.
  const groups = new URL(`http://[${ip6}]`).hostname.slice(1, -1).split(':')
  const hi = parseInt(groups.at(-2) || '0', 16)
  const lo = parseInt(groups.at(-1) || '0', 16)
  return `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`
}
