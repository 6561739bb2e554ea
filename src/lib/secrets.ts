/**
 * @module Secrets at rest: AES-256-GCM (Web Crypto) under a key derived from HEARTH_SECRET.
 * Stored as `v1.<base64url(iv ‖ ciphertext ‖ tag)>`; a fresh 96-bit IV per value.
 */
import { deriveKeyBytes } from './crypto.ts'

export interface SecretBox {
  encrypt(plain: string): Promise<string>
  decrypt(sealed: string): Promise<string>
}

export async function createSecretBox(secret: string): Promise<SecretBox> {
  const raw = await deriveKeyBytes(secret, 'secrets-at-rest')
  const key = await crypto.subtle.importKey('raw', raw as Uint8Array<ArrayBuffer>, 'AES-GCM', false, ['encrypt', 'decrypt'])
  return {
    async encrypt(plain) {
      const iv = crypto.getRandomValues(new Uint8Array(12))
      const sealed = new Uint8Array(await crypto.subtle.encrypt({ name: 'AES-GCM', iv }, key, new TextEncoder().encode(plain)))
      const out = new Uint8Array(iv.length + sealed.length)
      out.set(iv)
      out.set(sealed, iv.length)
      return `v1.${Buffer.from(out).toString('base64url')}`
    },
    async decrypt(sealed) {
      if (!sealed.startsWith('v1.')) throw new Error('unknown secret format')
      const bytes = Buffer.from(sealed.slice(3), 'base64url')
      const plain = await crypto.subtle.decrypt({ name: 'AES-GCM', iv: bytes.subarray(0, 12) }, key, bytes.subarray(12))
      return new TextDecoder().decode(plain)
    },
  }
}

/** What may be shown of a secret: `sk-...abcd` (never more than 7 characters of it). */
export function secretHint(value: string): string {
  if (value.length < 12) return `...${value.slice(-2)}`
  return `${value.slice(0, 3)}...${value.slice(-4)}`
}
