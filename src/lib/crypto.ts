/** @module Hashing, random tokens and key derivation on Web Crypto / Bun primitives. */

/** SHA-256 as hex. For high-entropy tokens (refresh tokens, API keys, codes with a per-row scope). */
export function sha256(text: string): string {
  return new Bun.CryptoHasher('sha256').update(text).digest('hex')
}

/** `bytes` random bytes as base64url. */
export function randomToken(bytes = 32): string {
  return Buffer.from(crypto.getRandomValues(new Uint8Array(bytes))).toString('base64url')
}

/** A uniformly random string of decimal digits (no modulo bias). */
export function randomDigits(length: number): string {
  let out = ''
  while (out.length < length) {
    const [n] = crypto.getRandomValues(new Uint32Array(1))
    if (n! >= 4_000_000_000) continue
    out += String(n! % 10)
  }
  return out
}

/** HKDF-SHA-256 of the instance secret for one purpose: raw key bytes. */
export async function deriveKeyBytes(secret: string, purpose: string, length = 32): Promise<Uint8Array> {
  const base = await crypto.subtle.importKey('raw', new TextEncoder().encode(secret), 'HKDF', false, ['deriveBits'])
  const bits = await crypto.subtle.deriveBits({ name: 'HKDF', hash: 'SHA-256', salt: new Uint8Array(0), info: new TextEncoder().encode(`hearth/${purpose}`) }, base, length * 8)
  return new Uint8Array(bits)
}
