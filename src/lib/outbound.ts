/**
 * @module The one way the server sends a request to an address a user chose: provider base URLs,
 * image URLs in requests, and later MCP servers, `http_fetch`, SQL hosts and workflow services
 * (docs/api.md §7 "Private addresses"). Only http and https, and redirects are never followed.
 *
 * For a caller who may not reach private addresses, a request goes out only to global unicast
 * addresses (global-address.ts): the host is normalised (the URL parser lowercases it, applies
 * IDNA, decodes percent-escapes and IPv4 shorthands; a trailing dot is dropped), an IP literal is
 * judged as written, a name is resolved once (its answer kept 10 s) and refused when it does not
 * resolve or when any of its addresses is not global. Then the connection is made to the address
 * that was checked: the URL's host becomes that IP, while the `Host` header and, for https, the TLS
 * server name (SNI and the certificate check) stay the name. There is no second lookup between
 * the check and the connection, so a name that resolves elsewhere the next time (DNS rebinding)
 * cannot swap the address. Admins, and everyone when `HEARTH_ALLOW_PRIVATE_UPSTREAMS=true`, go
 * out with a plain fetch.
 *
 * Connections that are not HTTP (SQL servers) use `checkHost` when the host is saved and
 * `addressFor` when they connect: the same rule, and the driver is given the checked address.
 */
import { isIP, isIPv4, isIPv6 } from 'node:net'
import { AppError, validationError } from './errors.ts'
import { isGlobalUnicast } from './global-address.ts'

/** Who is asking: only the role counts. */
export interface OutboundCaller {
  role: string
}

export interface OutboundOptions {
  allowPrivate: boolean
  /** every address a name resolves to; default: the system resolver (getaddrinfo, /etc/hosts included) */
  resolve?: (host: string) => Promise<string[]>
  /** what makes the connection; default: fetch */
  transport?: typeof fetch
}

/** A request the guard would not send: an upstream failure, since it is never the server's own. */
export const outboundRefused = (detail: string) => new AppError(502, 'UPSTREAM_ERROR', detail)

const RESOLVED_TTL_MS = 10_000
/** connection failures after which the next address of a name is tried: nothing was sent */
const NOT_CONNECTED = new Set(['ECONNREFUSED', 'ENETUNREACH', 'EHOSTUNREACH', 'EADDRNOTAVAIL'])

const systemResolve = async (host: string) => (await Bun.dns.lookup(host)).map((a) => a.address)

/** The host a URL connects to, as the resolver and the TLS server name want it: no brackets, no trailing dot. */
export function hostOf(url: URL): string {
  const h = url.hostname
  return h.startsWith('[') ? h.slice(1, -1) : h.replace(/\.+$/, '')
}

/** A bare host (a name, an IPv4 address, an IPv6 address with or without brackets) as the URL parser normalises it; throws when it is not one. */
function hostUrl(host: string): URL {
  if (!host || /[\s/\\?#@]/.test(host)) throw new TypeError('not a host')
  const url = new URL(`http://${isIPv6(host) ? `[${host}]` : host}`)
  if (url.port || !url.hostname) throw new TypeError('not a host')
  return url
}

type Refusal = 'scheme' | 'private' | 'resolves-private' | 'unresolved'
type Vetted = { host: string; addresses: string[] } | { host: string; refusal: Refusal }

const refusalText = (host: string, refusal: Refusal, protocol: string) =>
  refusal === 'scheme'
    ? `only http and https URLs are fetched, not ${protocol}`
    : refusal === 'unresolved'
      ? `${host} does not resolve`
      : `${host} ${refusal === 'private' ? 'is' : 'resolves to'} a loopback or private address, which only admins may use`

/**
 * Send `input` to `address` as if to the host its URL names: the URL's host becomes the address,
 * the `Host` header and the TLS server name stay the name. Redirects are not followed.
 */
export function sendTo(address: string, input: string | URL | Request, init: BunFetchRequestInit = {}, transport: typeof fetch = fetch): Promise<Response> {
  const url = new URL(input instanceof Request ? input.url : input)
  const host = hostOf(url)
  const target = new URL(url)
  target.hostname = isIPv6(address) ? `[${address}]` : address
  const headers = new Headers(init.headers ?? (input instanceof Request ? input.headers : undefined))
  const name = isIPv6(host) ? `[${host}]` : host
  headers.set('host', url.port ? `${name}:${url.port}` : name)
  const tls = url.protocol === 'https:' && !isIP(host) ? { ...init.tls, serverName: host } : init.tls
  return transport(input instanceof Request ? new Request(target, input) : target, { ...init, headers, tls, redirect: 'manual' })
}

/** Whether a failed attempt may be made again at another address: nothing was sent, and the body can be sent twice. */
const mayRetry = (error: unknown, input: string | URL | Request, init: RequestInit | undefined) =>
  NOT_CONNECTED.has((error as { code?: string } | undefined)?.code ?? '') && !(input instanceof Request && input.body) && !(init?.body instanceof ReadableStream)

/** `work`, or the signal's reason as soon as it aborts (a lookup cannot be cancelled, only no longer waited for). */
function untilAborted<T>(work: Promise<T>, signal: AbortSignal | null | undefined): Promise<T> {
  if (!signal) return work
  if (signal.aborted) return Promise.reject(signal.reason)
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason)
    signal.addEventListener('abort', onAbort, { once: true })
    work.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort))
  })
}

export function createOutboundGuard(options: OutboundOptions) {
  const resolve = options.resolve ?? systemResolve
  const transport = options.transport ?? fetch
  const resolved = new Map<string, { addresses: Promise<string[]>; until: number }>()

  const mayReachPrivate = (caller: OutboundCaller) => caller.role === 'admin' || options.allowPrivate

  /** A name's addresses, kept 10 s; a failed lookup is not kept. */
  function lookup(host: string): Promise<string[]> {
    const now = Date.now()
    const hit = resolved.get(host)
    if (hit && hit.until > now) return hit.addresses
    const addresses = resolve(host).then((list) => [...new Set(list)])
    const entry = { addresses, until: now + RESOLVED_TTL_MS }
    addresses.catch(() => resolved.get(host) === entry && resolved.delete(host))
    if (resolved.size >= 1_000) resolved.clear()
    resolved.set(host, entry)
    return addresses
  }

  /** Where a guarded request to `url` may connect (IPv4 first), or why it may not. A lookup is given up when `signal` aborts. */
  async function vet(url: URL, signal?: AbortSignal | null): Promise<Vetted> {
    const host = hostOf(url)
    if (url.protocol !== 'http:' && url.protocol !== 'https:') return { host, refusal: 'scheme' }
    if (isIP(host)) return isGlobalUnicast(host) ? { host, addresses: [host] } : { host, refusal: 'private' }
    // always this machine (RFC 6761), whatever a resolver says
    if (host === 'localhost' || host.endsWith('.localhost')) return { host, refusal: 'private' }
    let addresses: string[]
    try {
      addresses = await untilAborted(lookup(host), signal)
    } catch (error) {
      if (signal?.aborted) throw error
      return { host, refusal: 'unresolved' }
    }
    if (!addresses.length) return { host, refusal: 'unresolved' }
    if (!addresses.every((a) => isGlobalUnicast(a))) return { host, refusal: 'resolves-private' }
    return { host, addresses: [...addresses.filter((a) => isIPv4(a)), ...addresses.filter((a) => !isIPv4(a))] }
  }

  const plain = ((input: string | URL | Request, init?: BunFetchRequestInit) => {
    const href = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url
    // fetch would also read file:, data:, blob: and s3: URLs
    if (!/^https?:/i.test(href)) return Promise.reject(outboundRefused(refusalText('', 'scheme', href.split(':')[0] + ':')))
    return transport(input, { ...init, redirect: 'manual' })
  }) as typeof fetch

  const guarded = (async (input: string | URL | Request, init?: BunFetchRequestInit) => {
    const url = new URL(input instanceof Request ? input.url : input)
    const vetted = await vet(url, init?.signal ?? (input instanceof Request ? input.signal : undefined))
    if ('refusal' in vetted) throw outboundRefused(refusalText(vetted.host, vetted.refusal, url.protocol))
    // an IP literal needs nothing rewritten
    if (isIP(vetted.host)) return transport(input, { ...init, redirect: 'manual' })
    for (let i = 0; ; i++) {
      try {
        return await sendTo(vetted.addresses[i]!, input, init, transport)
      } catch (error) {
        if (i + 1 >= vetted.addresses.length || !mayRetry(error, input, init)) throw error
      }
    }
  }) as typeof fetch

  return {
    mayReachPrivate,

    /** The fetch for requests `caller` makes the server send (same signature as fetch; a refused request rejects with a 502 AppError). */
    fetchFor: (caller: OutboundCaller): typeof fetch => (mayReachPrivate(caller) ? plain : guarded),

    /**
     * Where a connection that is not HTTP (a SQL server's) to `host` may go for `caller`. For one
     * who may reach private addresses: the host as written (normalised like a URL's). For anyone
     * else: one of its addresses (IPv4 first), resolved and checked now — the caller connects to
     * that address and never looks the name up again, so a name that resolves elsewhere the next
     * time (DNS rebinding) cannot swap it. Refused, or a name that does not resolve: a 502.
     */
    async addressFor(caller: OutboundCaller, host: string, signal?: AbortSignal | null): Promise<string> {
      const url = hostUrl(host)
      if (mayReachPrivate(caller)) return hostOf(url)
      const vetted = await vet(url, signal)
      if ('refusal' in vetted) throw outboundRefused(refusalText(vetted.host, vetted.refusal, url.protocol))
      return vetted.addresses[0]!
    },

    /** `check` for a bare host name or IP (a SQL server's): a 422 naming `field` when `caller` may not use it; a name that does not resolve (yet) is accepted. */
    async checkHost(caller: OutboundCaller, host: string, field: string): Promise<void> {
      let url: URL
      try {
        url = hostUrl(host)
      } catch {
        throw validationError('Not a host name', [{ path: field, message: 'must be a host name or an IP address' }])
      }
      if (mayReachPrivate(caller)) return
      const vetted = await vet(url)
      if ('refusal' in vetted && vetted.refusal !== 'unresolved')
        throw validationError('Only admins may use loopback or private addresses', [{ path: field, message: 'loopback and private addresses (also by a name that resolves to one) are for admins' }])
    },

    /**
     * When a URL is set: a 422 naming `field` when `caller` may not use it. A name that does not
     * resolve (yet) is accepted — every request to it is checked again. An absent URL has nothing to check.
     */
    async check(caller: OutboundCaller, url: string | null | undefined, field: string): Promise<void> {
      if (!url) return
      let parsed: URL
      try {
        parsed = new URL(url)
      } catch {
        throw validationError('Not a URL', [{ path: field, message: 'must be an http or https URL' }])
      }
      if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw validationError('Only http and https URLs can be used', [{ path: field, message: 'must be an http or https URL' }])
      if (mayReachPrivate(caller)) return
      const vetted = await vet(parsed)
      if ('refusal' in vetted && vetted.refusal !== 'unresolved')
        throw validationError('Only admins may use loopback or private addresses', [{ path: field, message: 'loopback and private addresses (also by a name that resolves to one) are for admins' }])
    },
  }
}

export type OutboundGuard = ReturnType<typeof createOutboundGuard>
