/**
 * @module Who may make the server send requests to loopback and private addresses
 * (private-address.ts): admins, and everyone when the instance allows it
 * (`HEARTH_ALLOW_PRIVATE_UPSTREAMS=true`). One rule for every URL a user can aim the server at —
 * provider base URLs (docs/api.md §7), and later MCP servers, SQL connections and `http_fetch`.
 * Check a URL when it is set (`assertAllowed`), and again before every call (`isRefused`), since a
 * name can be made to resolve elsewhere after it was accepted.
 */
import { validationError } from './errors.ts'
import { reachesPrivate } from './private-address.ts'

/** Who is asking: only the role counts. */
export interface AddressCaller {
  role: string
}

export function createAddressPolicy(options: { allowPrivate: boolean }) {
  const mayReachPrivate = (caller: AddressCaller) => caller.role === 'admin' || options.allowPrivate

  /** Whether a call by `caller` to `url` must not be made: the URL reaches a private address they may not use. */
  const isRefused = async (caller: AddressCaller, url: string) => !mayReachPrivate(caller) && (await reachesPrivate(url))

  return {
    mayReachPrivate,
    isRefused,

    /** A 422 naming `field` when `caller` may not use `url`; an absent URL has nothing to check. */
    async assertAllowed(caller: AddressCaller, url: string | null | undefined, field: string) {
      if (url && (await isRefused(caller, url)))
        throw validationError('Only admins may use loopback or private addresses', [{ path: field, message: 'loopback and private addresses (also by a name that resolves to one) are for admins' }])
    },
  }
}

export type AddressPolicy = ReturnType<typeof createAddressPolicy>
