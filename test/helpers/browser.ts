/**
 * A real browser for the tests that need one: Debian's Chromium driven by playwright-core.
 * Where Chromium is not installed the suite says so and is not run, except under CI (`.ci/run`
 * installs it), where a missing browser fails the run.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { chromium, type BrowserContext } from 'playwright-core'

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'

/** Whether the browser suites run here; prints why not once when they do not. */
export function browserAvailable(suite: string): boolean {
  if (existsSync(CHROMIUM)) return true
  if (process.env.CI) throw new Error(`${suite}: Chromium is missing at ${CHROMIUM} (CI installs Debian's chromium before the tests)`)
  console.warn(`${suite}: NOT RUN — no Chromium at ${CHROMIUM} (apt-get install chromium, or set CHROMIUM_PATH)`)
  return false
}

/**
 * A fresh headless Chromium profile that can only reach `allowedOrigin` (TRAPS.md: the flags that
 * keep it off the closed network), closed by `close()`.
 */
export async function openBrowser(allowedOrigin: string) {
  const profile = mkdtempSync(join(tmpdir(), 'hearth-browser-'))
  const host = new URL(allowedOrigin).hostname
  const context: BrowserContext = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', `--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE ${host}`],
  })
  return {
    context,
    page: context.pages()[0] ?? (await context.newPage()),
    async close() {
      await context.close()
      rmSync(profile, { recursive: true, force: true })
    },
  }
}
