// Proves /docs renders in a browser with the outside network cut off: every request to a host
// other than the server's is aborted and reported. Run by .ci/run against the built binary.
// Usage: node scripts/check-docs-offline.mjs http://127.0.0.1:PORT [screenshot.png]
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { chromium } from 'playwright-core'

const base = process.argv[2]
const screenshot = process.argv[3]
if (!base) throw new Error('usage: check-docs-offline.mjs <base url> [screenshot.png]')
const allowedHost = new URL(base).host
const profile = mkdtempSync(join(tmpdir(), 'hearth-docs-check-'))
const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1'],
})
const outside = []
const errors = []
await context.route('**/*', (route) => {
  const url = route.request().url()
  if (/^(data|blob):/.test(url) || new URL(url).host === allowedHost) return route.continue()
  outside.push(url)
  return route.abort('internetdisconnected')
})
const page = context.pages()[0] ?? (await context.newPage())
page.on('pageerror', (e) => errors.push(String(e)))
page.on('console', (m) => m.type() === 'error' && errors.push(m.text()))
await page.goto(`${base}/docs`, { waitUntil: 'networkidle', timeout: 30_000 })
// the reference renders the whole document (300 KB of OpenAPI) after the assets load: wait for its text
// rather than a fixed time, which a loaded machine overran (seen once in CI at 2 s)
const expected = ['Hearth API', '/health', '/ready']
await page.waitForFunction((words) => words.every((w) => (document.body?.textContent ?? '').includes(w)), expected, { timeout: 30_000 }).catch(() => {})
const text = await page.evaluate(() => document.body?.textContent ?? '')
if (screenshot) await page.screenshot({ path: screenshot, fullPage: true })
await context.close()
rmSync(profile, { recursive: true, force: true })

const rendered = expected.every((s) => text.includes(s))
console.log(JSON.stringify({ rendered, outside_requests: outside, errors }))
process.exit(rendered && outside.length === 0 && errors.length === 0 ? 0 : 1)
