/**
 * A fake DNS server on a loopback UDP port: answers A and AAAA questions with whatever `answer`
 * returns for the n-th question (from 1) of that name and type — a rebinding name answers a public
 * address first and 127.0.0.1 after — with a TTL of 0, and records every question. Point a
 * node:dns Resolver at it (`resolverOf`).
 */
import dgram from 'node:dgram'
import { Resolver } from 'node:dns/promises'
import { isIPv4, isIPv6 } from 'node:net'

export type Question = { name: string; type: 'A' | 'AAAA' | number }
export type FakeDns = { server: string; questions: Question[]; stop(): Promise<void> }

const TYPES: Record<number, 'A' | 'AAAA'> = { 1: 'A', 28: 'AAAA' }

export async function startFakeDns(answer: (q: Question, n: number) => string[]): Promise<FakeDns> {
  const questions: Question[] = []
  const socket = dgram.createSocket('udp4')
  socket.on('message', (msg, peer) => {
    let at = 12
    const labels: string[] = []
    while (msg[at]) {
      labels.push(msg.toString('ascii', at + 1, at + 1 + msg[at]!))
      at += msg[at]! + 1
    }
    at += 1
    const code = msg.readUInt16BE(at)
    at += 4
    const q: Question = { name: labels.join('.').toLowerCase(), type: TYPES[code] ?? code }
    const n = questions.filter((p) => p.name === q.name && p.type === q.type).length + 1
    questions.push(q)
    const addresses = answer(q, n).filter((a) => (q.type === 'A' ? isIPv4(a) : q.type === 'AAAA' && isIPv6(a)))
    const records = addresses.map((a) => {
      const rdata = q.type === 'A' ? Buffer.from(a.split('.').map(Number)) : ipv6Bytes(a)
      const rr = Buffer.alloc(12)
      rr.writeUInt16BE(0xc00c, 0) // the name: a pointer to the question's
      rr.writeUInt16BE(code, 2)
      rr.writeUInt16BE(1, 4) // class IN
      rr.writeUInt32BE(0, 6) // TTL 0: never cache
      rr.writeUInt16BE(rdata.length, 10)
      return Buffer.concat([rr, rdata])
    })
    const header = Buffer.alloc(12)
    header.writeUInt16BE(msg.readUInt16BE(0), 0)
    header.writeUInt16BE(addresses.length || q.type === 'AAAA' ? 0x8180 : 0x8183, 2) // a response; NXDOMAIN when a name has no address at all
    header.writeUInt16BE(1, 4)
    header.writeUInt16BE(records.length, 6)
    socket.send(Buffer.concat([header, msg.subarray(12, at), ...records]), peer.port, peer.address)
  })
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve))
  return {
    server: `127.0.0.1:${socket.address().port}`,
    questions,
    stop: () => new Promise<void>((resolve) => socket.close(() => resolve())),
  }
}

/** A resolver that asks only `server`, for both address families: every address of a name, or a failure when it has none. */
export function resolverOf(server: string): (host: string) => Promise<string[]> {
  const resolver = new Resolver()
  resolver.setServers([server])
  return async (host) => {
    const answers = await Promise.allSettled([resolver.resolve4(host), resolver.resolve6(host)])
    const addresses = answers.flatMap((a) => (a.status === 'fulfilled' ? a.value : []))
    if (!addresses.length) throw new Error(`${host} does not resolve`)
    return addresses
  }
}

function ipv6Bytes(address: string): Buffer {
  const [head = '', tail = ''] = address.split('::')
  const h = head ? head.split(':') : []
  const t = tail ? tail.split(':') : []
  const groups = address.includes('::') ? [...h, ...Array(8 - h.length - t.length).fill('0'), ...t] : h
  const out = Buffer.alloc(16)
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), i * 2))
  return out
}
