/** @module `/`: until there is a web console, a small page saying what this server is, where its docs are and how to create the admin. */
import { Elysia } from 'elysia'
import type { SetupService } from './service.ts'

export function setupRoutes(deps: { setup: SetupService; version: string }) {
  const { setup, version } = deps
  return new Elysia({ name: 'hearth.routes.setup' }).get(
    '/',
    async ({ request }) =>
      new Response(landingPage(version, new URL(request.url).origin, await setup.pending()), {
        headers: {
          'content-type': 'text/html; charset=utf-8',
          // whether an admin exists changes: never cached
          'cache-control': 'no-store',
          // nothing but its own inline style: the page cannot be made to load or run anything
          'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
          'x-content-type-options': 'nosniff',
        },
      }),
    { detail: { hide: true } },
  )
}

function landingPage(version: string, origin: string, setupPending: boolean): string {
  const next = setupPending
    ? `<h2>No admin yet</h2>
<p>The first account is this server's admin. Create it in one of two ways:</p>
<ul>
<li>on the server: <code>hearth admin create --email you@example.com --username you</code> (from source: <code>npm start -- admin create …</code>);</li>
<li>or register with the <strong>setup token</strong>, which the server printed in its log at start and saved in the file <code>setup-token</code> in its data directory:
<pre>curl -X POST ${escapeHtml(origin)}/api/v1/auth/register -H 'content-type: application/json' \\
  -d '{"username":"you","email":"you@example.com","password":"…","setup_token":"hst_…"}'</pre></li>
</ul>
<p>Until then, registration without the setup token is refused.</p>`
    : `<h2>Ready</h2>
<p>This server has an admin. Sign in from your application, or with <code>POST /api/v1/auth/login</code>.</p>`
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Hearth</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:44rem;margin:3rem auto;padding:0 1rem;color:#222}code,pre{font:14px ui-monospace,monospace;background:#f3f3f3;border-radius:4px}code{padding:0 .25rem}pre{padding:.75rem;overflow-x:auto}a{color:#0b57d0}</style>
</head>
<body>
<h1>Hearth <small>${escapeHtml(version)}</small></h1>
<p>This is a Hearth server: the backend behind an AI application's UI — accounts, model providers,
streaming chat and an OpenAI-compatible gateway at <code>/v1</code>. It has no web console yet: applications talk to its API.</p>
<ul>
<li><a href="/docs">API reference</a> (<code>/docs</code>, works offline) and the <a href="/openapi.json">OpenAPI document</a></li>
<li><a href="/health">/health</a> and <a href="/ready">/ready</a> for monitoring</li>
</ul>
${next}
</body>
</html>
`
}

const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)
