/**
 * @module First start: until an admin exists, the account that becomes admin must present a setup
 * token, so that on a public host the first stranger to register does not get the server.
 *
 * The token is derived from the instance secret (HKDF), so every instance sharing a Postgres
 * database computes the same one with nothing stored; it is shown in the start log and written to
 * `<data dir>/setup-token`, and it is dead once an active admin exists (the file is removed then).
 */
import { chmodSync, mkdirSync, unlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { and, eq } from 'drizzle-orm'
import type { Database } from '../../db/index.ts'
import { deriveKeyBytes, sha256 } from '../../lib/crypto.ts'
import type { Logger } from '../../lib/logger.ts'
import { setupTokenInvalid, setupTokenRequired } from './errors.ts'

export const SETUP_TOKEN_FILE = 'setup-token'

/** `hst_` and 24 base64url characters, the same on every instance with this secret. */
export async function deriveSetupToken(secret: string): Promise<string> {
  return `hst_${Buffer.from(await deriveKeyBytes(secret, 'setup-token', 18)).toString('base64url')}`
}

/** Remove the setup token file; true when there was one. */
export function removeSetupTokenFile(dataDir: string): boolean {
  try {
    unlinkSync(join(dataDir, SETUP_TOKEN_FILE))
    return true
  } catch {
    return false
  }
}

export function createSetupService(deps: { database: Database; logger: Logger; dataDir: string; token: string }) {
  const { database, logger, dataDir, token } = deps
  const { db, t } = database
  const file = join(dataDir, SETUP_TOKEN_FILE)
  const tokenHash = sha256(token)
  /** once an admin exists it stays (the last active admin cannot be removed): no more queries then */
  let done = false

  const activeAdmin = db
    .select({ id: t.users.id })
    .from(t.users)
    .where(and(eq(t.users.role, 'admin'), eq(t.users.isActive, true)))
    .limit(1)
    .prepare('users_active_admin')

  /** true while no active admin exists */
  async function pending(): Promise<boolean> {
    if (done) return false
    if ((await activeAdmin.execute()).length === 0) return true
    done = true
    if (removeSetupTokenFile(dataDir)) logger.info('setup done: the setup token file is removed', { file })
    return false
  }

  return {
    token,
    file,
    pending,

    /**
     * Gate a registration. While setup is pending it needs the token (else 403 saying where it is)
     * and is the first admin's: true. Once an admin exists the token means nothing: false.
     */
    async admit(presented: string | undefined): Promise<boolean> {
      if (!(await pending())) return false
      if (!presented) throw setupTokenRequired()
      // compare hashes: the time taken says nothing about the token
      if (sha256(presented) !== tokenHash) throw setupTokenInvalid()
      return true
    },

    /** At start: write the token file (mode 0600) while setup is pending, remove it once done. */
    async prepare(): Promise<boolean> {
      if (!(await pending())) return false
      try {
        mkdirSync(dataDir, { recursive: true })
        writeFileSync(file, token + '\n', { mode: 0o600 })
        chmodSync(file, 0o600)
      } catch (error) {
        logger.warn('could not write the setup token file', { file, error })
      }
      return true
    },

    /** The first admin exists (registered here, or created by `hearth admin create`). */
    async completed() {
      done = false
      await pending()
    },
  }
}

export type SetupService = ReturnType<typeof createSetupService>
