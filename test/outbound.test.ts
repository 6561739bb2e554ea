/**
 * The outbound-request guard (src/lib/outbound.ts, src/lib/global-address.ts; docs/api.md §7
 * "Private addresses"): who may aim the server at which addresses, and that a request goes to the
 * address that was checked — directly, without HTTP routes or a database. Servers on loopback
 * (plain, TLS, DNS) stand in for the places a request could reach.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { createServer } from 'node:https'
import { isIPv6 } from 'node:net'
import { networkInterfaces, tmpdir } from 'node:os'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { addressSet, isGlobalUnicast } from '../src/lib/global-address.ts'
import { createOutboundGuard, sendTo, type OutboundOptions } from '../src/lib/outbound.ts'
import { resolverOf, startFakeDns } from './fakes/dns.ts'
import { privateName } from './helpers/private-name.ts'

const user = { role: 'user' }
const admin = { role: 'admin' }
const strict = createOutboundGuard({ allowPrivate: false })

const PRIVATE = ['http://127.0.0.1:11434/v1', 'http://10.1.2.3/v1', 'http://192.168.1.5/v1', 'http://169.254.169.254/latest', 'http://[::1]:8080/v1', 'http://localhost:8000/v1', 'http://api.localhost/v1', 'http://localhost.:8000/v1', 'http://api.localhost./v1']
const PUBLIC = ['http://172.32.0.1/v1', 'https://93.184.216.34/v1', 'http://[2606:4700::1111]/v1']

/** The 422 that names the field (the same for every caller of the guard). */
const refusal = (field: string) => ({
  status: 422,
  code: 'VALIDATION_ERROR',
  detail: 'Only admins may use loopback or private addresses',
  errors: [{ path: field, message: 'loopback and private addresses (also by a name that resolves to one) are for admins' }],
})

/** A guarded fetch's refusal: an upstream failure that says why. */
const refused = (why: string) => ({ status: 502, code: 'UPSTREAM_ERROR', detail: expect.stringContaining(why) })

/** A guard whose connections and lookups are watched: `sent` is every request it let out (answered 200 without connecting), `looked` every name it resolved. */
function watched(options: Partial<OutboundOptions> = {}) {
  const sent: { url: string; host: string | null; init: BunFetchRequestInit }[] = []
  const looked: string[] = []
  const resolve = options.resolve ?? (async (host: string) => (await Bun.dns.lookup(host)).map((a) => a.address))
  const guard = createOutboundGuard({
    allowPrivate: false,
    ...options,
    resolve: (host) => (looked.push(host), resolve(host)),
    transport: (async (input: string | URL | Request, init: BunFetchRequestInit = {}) => {
      sent.push({ url: String(input instanceof Request ? input.url : input), host: new Headers(init.headers).get('host'), init })
      return new Response('ok')
    }) as typeof fetch,
  })
  return { guard, sent, looked }
}

const literal = (address: string, port = 9) => (isIPv6(address) ? `http://[${address}]:${port}/` : `http://${address}:${port}/`)

describe('outbound guard: a user, private addresses not allowed', () => {
  test.each(PRIVATE)('%s is refused: no request, and a 422 naming the field', async (url) => {
    const { guard, sent } = watched()
    await expect(guard.fetchFor(user)(url)).rejects.toMatchObject(refused('private address'))
    expect(sent).toEqual([])
    await expect(strict.check(user, url, 'base_url')).rejects.toMatchObject(refusal('base_url'))
  })

  test('a host name is judged by what it resolves to', async () => {
    const url = `http://${await privateName()}:9/v1`
    await expect(strict.fetchFor(user)(url)).rejects.toMatchObject(refused('resolves to a loopback or private address'))
    // written fully qualified, or in capitals, it is the same name
    await expect(strict.fetchFor(user)(`http://${await privateName()}.:9/v1`)).rejects.toMatchObject(refused('private address'))
    await expect(strict.fetchFor(user)(`http://${(await privateName()).toUpperCase()}:9/v1`)).rejects.toMatchObject(refused('private address'))
    await expect(strict.check(user, url, 'server_url')).rejects.toMatchObject(refusal('server_url'))
    await expect(strict.check(user, `http://${await privateName()}.:9/v1`, 'server_url')).rejects.toMatchObject(refusal('server_url'))
  })

  test.each(PUBLIC)('%s is allowed', async (url) => {
    expect(await strict.check(user, url, 'base_url')).toBeUndefined()
    const { guard, sent } = watched()
    expect((await guard.fetchFor(user)(url)).status).toBe(200)
    expect(sent.map((s) => new URL(s.url).href)).toEqual([new URL(url).href])
  })

  test('no URL has nothing to check', async () => {
    expect(await strict.check(user, null, 'base_url')).toBeUndefined()
    expect(await strict.check(user, undefined, 'base_url')).toBeUndefined()
    expect(strict.mayReachPrivate(user)).toBe(false)
  })
})

/** Every way of writing an address that is not global unicast: IANA's special-purpose ranges, IPv6 forms carrying them, names for this machine. */
const NOT_GLOBAL: [string, string][] = [
  ['loopback', 'http://127.0.0.1:9/'],
  ['loopback, high end', 'http://127.255.255.254:9/'],
  ['loopback as a number', 'http://2130706433:9/'],
  ['loopback in hex shorthand', 'http://0x7f.1:9/'],
  ['loopback shorthand', 'http://127.1:9/'],
  ['"this network"', 'http://0.0.0.0:9/'],
  ['private 10/8', 'http://10.0.0.1:9/'],
  ['private 172.16/12', 'http://172.31.255.255:9/'],
  ['private 192.168/16', 'http://192.168.0.1:9/'],
  ['shared 100.64/10', 'http://100.64.0.1:9/'],
  ['link-local, cloud metadata', 'http://169.254.169.254/latest/meta-data/'],
  ['IETF protocol assignments 192.0.0/24', 'http://192.0.0.8:9/'],
  ['TEST-NET-1', 'http://192.0.2.1:9/'],
  ['6to4 relay anycast', 'http://192.88.99.1:9/'],
  ['benchmarking 198.18/15', 'http://198.18.0.1:9/'],
  ['benchmarking 198.18/15, high end', 'http://198.19.255.255:9/'],
  ['TEST-NET-2', 'http://198.51.100.7:9/'],
  ['TEST-NET-3', 'http://203.0.113.9:9/'],
  ['multicast', 'http://224.0.0.1:9/'],
  ['multicast, SSDP', 'http://239.255.255.250:9/'],
  ['reserved 240/4', 'http://240.0.0.1:9/'],
  ['broadcast', 'http://255.255.255.255:9/'],
  ['IPv6 loopback', 'http://[::1]:9/'],
  ['IPv6 unspecified', 'http://[::]:9/'],
  ['IPv4-compatible loopback', 'http://[::127.0.0.1]:9/'],
  ['IPv4-compatible public', 'http://[::93.184.216.34]:9/'],
  ['IPv4-mapped loopback', 'http://[::ffff:127.0.0.1]:9/'],
  ['IPv4-mapped loopback in hex', 'http://[::ffff:7f00:1]:9/'],
  ['IPv4-mapped metadata', 'http://[0:0:0:0:0:ffff:169.254.169.254]:9/'],
  ['SIIT-translated loopback', 'http://[::ffff:0:127.0.0.1]:9/'],
  ['NAT64 loopback', 'http://[64:ff9b::127.0.0.1]:9/'],
  ['NAT64 private', 'http://[64:ff9b::10.0.0.1]:9/'],
  ['local-use NAT64', 'http://[64:ff9b:1::5db8:d822]:9/'],
  ['discard-only 100::/64', 'http://[100::1]:9/'],
  ['IETF protocol assignments 2001::/23 (Teredo)', 'http://[2001::1]:9/'],
  ['IPv6 documentation', 'http://[2001:db8::1]:9/'],
  ['IPv6 documentation 3fff::/20', 'http://[3fff::1]:9/'],
  ['6to4 of loopback', 'http://[2002:7f00:1::1]:9/'],
  ['unique-local', 'http://[fd00::1]:9/'],
  ['unique-local fc00::/8', 'http://[fc00::1]:9/'],
  ['IPv6 link-local', 'http://[fe80::1]:9/'],
  ['IPv6 multicast', 'http://[ff02::1]:9/'],
  ['outside 2000::/3', 'http://[4000::1]:9/'],
  ['localhost', 'http://localhost:9/'],
  ['localhost with a trailing dot', 'http://localhost.:9/'],
  ['LOCALHOST with a trailing dot', 'http://LOCALHOST.:9/'],
  ['a subdomain of localhost', 'http://foo.localhost.:9/'],
  ['localhost in full-width letters', 'http://ｌｏｃａｌｈｏｓｔ:9/'],
  ['localhost percent-encoded', 'http://%6c%6fcalhost:9/'],
  // this machine's own addresses, whatever ranges they are in
  ...Object.values(networkInterfaces())
    .flatMap((list) => list ?? [])
    .map((i): [string, string] => [`this machine's interface address ${i.address}`, literal(i.address)]),
]

/** Global unicast addresses, among them the nearest neighbours of refused ranges. */
const GLOBAL: [string, string][] = [
  ['public IPv4', 'http://93.184.216.34:9/'],
  ['just past 172.16/12', 'http://172.32.0.1:9/'],
  ['just past 100.64/10', 'http://100.128.0.1:9/'],
  ['just past 198.18/15', 'http://198.20.0.1:9/'],
  ['just below multicast', 'http://223.255.255.254:9/'],
  ['public IPv6', 'http://[2606:4700::1111]:9/'],
  ['IPv4-mapped public', 'http://[::ffff:93.184.216.34]:9/'],
  ['NAT64 of a public IPv4 (DNS64 networks)', 'http://[64:ff9b::93.184.216.34]:9/'],
  ['https to a public IPv4', 'https://93.184.216.34/'],
]

describe('outbound guard: the address table', () => {
  test.each(NOT_GLOBAL)('%s (%s) is refused with no request sent', async (_, url) => {
    const { guard, sent } = watched()
    await expect(guard.fetchFor(user)(url)).rejects.toMatchObject(refused('private address'))
    expect(sent).toEqual([])
    await expect(strict.check(user, url, 'base_url')).rejects.toMatchObject(refusal('base_url'))
  })

  test.each(GLOBAL)('%s (%s) is allowed, as written, without a lookup', async (_, url) => {
    const { guard, sent, looked } = watched()
    expect((await guard.fetchFor(user)(url)).status).toBe(200)
    expect(sent.map((s) => new URL(s.url).href)).toEqual([new URL(url).href])
    expect(sent[0]!.init.redirect).toBe('manual')
    expect(looked).toEqual([])
    expect(await strict.check(user, url, 'base_url')).toBeUndefined()
  })

  test("an address of this machine's interfaces is refused even when it is global", () => {
    const own = addressSet(['93.184.216.34', '2606:4700::1111'])
    expect(isGlobalUnicast('93.184.216.34')).toBe(true)
    expect(isGlobalUnicast('93.184.216.34', own)).toBe(false)
    // the same address, written otherwise
    expect(isGlobalUnicast('::ffff:93.184.216.34', own)).toBe(false)
    expect(isGlobalUnicast('64:ff9b::5db8:d822', own)).toBe(false)
    expect(isGlobalUnicast('2606:4700:0:0::1111', own)).toBe(false)
    expect(isGlobalUnicast('93.184.216.35', own)).toBe(true)
  })

  test('a name is not an address', () => {
    expect(isGlobalUnicast('example.com')).toBe(false)
    expect(isGlobalUnicast('')).toBe(false)
  })
})

describe('outbound guard: names', () => {
  test('a name that does not resolve is refused when called; accepted when set, since every call checks it again', async () => {
    const { guard, sent } = watched()
    await expect(guard.fetchFor(user)('http://no-such-name.invalid/v1')).rejects.toMatchObject(refused('no-such-name.invalid does not resolve'))
    expect(sent).toEqual([])
    expect(await strict.check(user, 'https://no-such-name.invalid/v1', 'base_url')).toBeUndefined()
  })

  test('a name resolving to a public address is connected to at that address; Host and TLS server name stay the name', async () => {
    const { guard, sent, looked } = watched({ resolve: async () => ['93.184.216.34'] })
    await guard.fetchFor(user)('http://Public.Example.:8080/v1/models?x=1', { headers: { authorization: 'Bearer k' } })
    await guard.fetchFor(user)('https://public.example/v1/models')
    expect(sent.map((s) => [s.url, s.host, s.init.redirect, s.init.tls?.serverName])).toEqual([
      ['http://93.184.216.34:8080/v1/models?x=1', 'public.example:8080', 'manual', undefined],
      ['https://93.184.216.34/v1/models', 'public.example', 'manual', 'public.example'],
    ])
    expect(new Headers(sent[0]!.init.headers).get('authorization')).toBe('Bearer k')
    // the answer is kept for a while: one lookup for both calls
    expect(looked).toEqual(['public.example'])
  })

  test('a name is refused when any of its addresses is not global', async () => {
    const { guard, sent } = watched({ resolve: async () => ['93.184.216.34', '10.0.0.1'] })
    await expect(guard.fetchFor(user)('http://mixed.example/')).rejects.toMatchObject(refused('mixed.example resolves to a loopback or private address'))
    await expect(guard.check(user, 'http://mixed.example/', 'base_url')).rejects.toMatchObject(refusal('base_url'))
    expect(sent).toEqual([])
  })

  test('IPv4 first; the next checked address when one refuses the connection, and never an unchecked one', async () => {
    const tried: string[] = []
    const guard = createOutboundGuard({
      allowPrivate: false,
      resolve: async () => ['2606:4700::1111', '93.184.216.34'],
      transport: (async (input: string | URL) => {
        tried.push(new URL(input).hostname)
        if (tried.length === 1) throw Object.assign(new Error('refused'), { code: 'ECONNREFUSED' })
        return new Response('ok')
      }) as typeof fetch,
    })
    expect((await guard.fetchFor(user)('http://two.example/', { method: 'POST', body: '{}' })).status).toBe(200)
    expect(tried).toEqual(['93.184.216.34', '[2606:4700::1111]'])
  })

  test('a lookup that hangs is given up when the request is aborted', async () => {
    const { guard, sent } = watched({ resolve: () => new Promise<string[]>(() => {}) })
    const started = performance.now()
    await expect(guard.fetchFor(user)('http://slow-dns.example/', { signal: AbortSignal.timeout(50) })).rejects.toMatchObject({ name: 'TimeoutError' })
    expect(performance.now() - started).toBeLessThan(1000)
    expect(sent).toEqual([])
  })

  test('a failed lookup is not kept', async () => {
    let n = 0
    const { guard } = watched({
      resolve: async () => {
        if (++n === 1) throw new Error('SERVFAIL')
        return ['93.184.216.34']
      },
    })
    await expect(guard.fetchFor(user)('http://flaky.example/')).rejects.toMatchObject(refused('does not resolve'))
    expect((await guard.fetchFor(user)('http://flaky.example/')).status).toBe(200)
  })
})

describe('outbound guard: who may reach private addresses', () => {
  test('an admin may: a plain request, still with redirects not followed', async () => {
    expect(strict.mayReachPrivate(admin)).toBe(true)
    const { guard, sent } = watched()
    for (const url of [...PRIVATE, `http://${await privateName()}:9/v1`]) {
      expect((await guard.fetchFor(admin)(url)).status).toBe(200)
      expect(await strict.check(admin, url, 'base_url')).toBeUndefined()
    }
    expect(sent.map((s) => s.url)).toEqual([...PRIVATE, `http://${await privateName()}:9/v1`])
    expect(sent.every((s) => s.init.redirect === 'manual')).toBe(true)
  })

  test('everyone may when the instance allows private addresses', async () => {
    const open = createOutboundGuard({ allowPrivate: true })
    expect(open.mayReachPrivate(user)).toBe(true)
    const { guard, sent } = watched({ allowPrivate: true })
    for (const url of [...PRIVATE, `http://${await privateName()}:9/v1`]) {
      expect((await guard.fetchFor(user)(url)).status).toBe(200)
      expect(await open.check(user, url, 'base_url')).toBeUndefined()
    }
    expect(sent.length).toBe(PRIVATE.length + 1)
  })

  test('nobody, admins included, makes the server fetch anything but http and https', async () => {
    const { guard, sent } = watched()
    for (const caller of [user, admin])
      for (const url of ['file:///etc/passwd', 'data:text/plain,hi', 'ftp://93.184.216.34/x']) await expect(guard.fetchFor(caller)(url)).rejects.toMatchObject(refused('only http and https'))
    expect(sent).toEqual([])
    for (const caller of [user, admin]) await expect(strict.check(caller, 'file:///etc/passwd', 'base_url')).rejects.toMatchObject({ status: 422, errors: [{ path: 'base_url' }] })
  })
})

describe('outbound guard: real connections on loopback', () => {
  let hits: { host: string | null; path: string }[] = []
  let server: ReturnType<typeof Bun.serve>
  beforeAll(() => {
    server = Bun.serve({
      hostname: '127.0.0.1',
      port: 0,
      fetch: (req) => {
        hits.push({ host: req.headers.get('host'), path: new URL(req.url).pathname })
        return req.url.endsWith('/redirect') ? Response.redirect(`http://127.0.0.1:${server.port}/elsewhere`, 307) : new Response('secret')
      },
    })
  })
  afterAll(() => server.stop(true))

  test('the probe: `localhost.` and this machine\'s name with a trailing dot reach nothing', async () => {
    hits = []
    for (const url of [`http://localhost.:${server.port}/secret`, `http://${await privateName()}.:${server.port}/secret`, `http://[::ffff:127.0.0.1]:${server.port}/secret`])
      await expect(strict.fetchFor(user)(url)).rejects.toMatchObject(refused('private address'))
    expect(hits).toEqual([])
    // the same requests from an admin do arrive
    expect(await (await strict.fetchFor(admin)(`http://localhost.:${server.port}/secret`)).text()).toBe('secret')
    expect(hits.length).toBe(1)
  })

  test('a redirect is answered, not followed', async () => {
    hits = []
    const res = await strict.fetchFor(admin)(`http://127.0.0.1:${server.port}/redirect`)
    expect(res.status).toBe(307)
    expect(hits.map((h) => h.path)).toEqual(['/redirect'])
  })

  test('sendTo over http: the connection goes to the address, the Host header names the host (which need not resolve)', async () => {
    hits = []
    const res = await sendTo('127.0.0.1', `http://pinned.invalid:${server.port}/pinned?x=1`)
    expect(await res.text()).toBe('secret')
    expect(hits).toEqual([{ host: `pinned.invalid:${server.port}`, path: '/pinned' }])
  })
})

describe('outbound guard: TLS to the checked address', () => {
  // a certificate for pinned.test only, made by openssl; the server records the name each TLS client asked for (SNI)
  const dir = mkdtempSync(join(tmpdir(), 'hearth-tls-'))
  let cert = ''
  let server: ReturnType<typeof createServer>
  let port = 0
  const seen: { sni: string | false; host: string | undefined }[] = []
  beforeAll(async () => {
    const made = Bun.spawnSync(['openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'), '-days', '2', '-subj', '/CN=pinned.test', '-addext', 'subjectAltName=DNS:pinned.test'])
    expect(made.exitCode).toBe(0)
    cert = readFileSync(join(dir, 'cert.pem'), 'utf8')
    server = createServer({ cert, key: readFileSync(join(dir, 'key.pem'), 'utf8') }, (req, res) => {
      seen.push({ sni: (req.socket as { servername?: string | false }).servername ?? false, host: req.headers.host })
      res.end('over tls')
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    port = (server.address() as { port: number }).port
  })
  afterAll(() => {
    server.close()
    rmSync(dir, { recursive: true, force: true })
  })

  test('the TLS server name is the host: sent as SNI, and the certificate is checked against it, not against the address', async () => {
    const res = await sendTo('127.0.0.1', `https://pinned.test:${port}/`, { tls: { ca: cert } })
    expect(await res.text()).toBe('over tls')
    expect(seen.at(-1)).toEqual({ sni: 'pinned.test', host: `pinned.test:${port}` })
    // a host the certificate does not name fails the check, though the address is the same
    await expect(sendTo('127.0.0.1', `https://other.test:${port}/`, { tls: { ca: cert } })).rejects.toMatchObject({ code: 'ERR_TLS_CERT_ALTNAME_INVALID' })
    // and the address itself is not what the certificate names either
    await expect(fetch(`https://127.0.0.1:${port}/`, { tls: { ca: cert } })).rejects.toMatchObject({ code: 'ERR_TLS_CERT_ALTNAME_INVALID' })
  })
})

describe('outbound guard: DNS rebinding', () => {
  test('a name answering a public address, then 127.0.0.1, is connected to at the public address it was checked at', async () => {
    let hits = 0
    const loopback = Bun.serve({ hostname: '127.0.0.1', port: 0, fetch: () => (hits++, new Response('secret')) })
    // the rebinding name: public the first time it is asked, this machine every time after; TTL 0
    const dns = await startFakeDns((q, n) => (q.type === 'A' ? [n === 1 ? '93.184.216.34' : '127.0.0.1'] : []))
    const connections: string[] = []
    const guard = createOutboundGuard({
      allowPrivate: false,
      resolve: resolverOf(dns.server),
      // the real fetch, watched: where does each connection go?
      transport: ((input: string | URL, init?: BunFetchRequestInit) => (connections.push(new URL(input).host), fetch(input, { ...init, signal: AbortSignal.timeout(1000) }))) as typeof fetch,
    })
    try {
      const url = `http://rebind.test:${loopback.port}/secret`
      // checked at 93.184.216.34 and connected there (nothing answers on that port in a closed network: the call fails)
      await guard
        .fetchFor(user)(url)
        .then((r) => r.body?.cancel())
        .catch(() => {})
      expect(connections).toEqual([`93.184.216.34:${loopback.port}`])
      expect(dns.questions.filter((q) => q.type === 'A')).toEqual([{ name: 'rebind.test', type: 'A' }])
      // the name does rebind: a client that looked it up again to connect would have reached loopback
      expect(await resolverOf(dns.server)('rebind.test')).toEqual(['127.0.0.1'])
      expect(hits).toBe(0)
      // a new check sees the new answer and refuses it
      const fresh = createOutboundGuard({ allowPrivate: false, resolve: resolverOf(dns.server) })
      await expect(fresh.fetchFor(user)(url)).rejects.toMatchObject(refused('rebind.test resolves to a loopback or private address'))
      expect(hits).toBe(0)
    } finally {
      loopback.stop(true)
      await dns.stop()
    }
  })
})
