import { type Context, Hono } from 'hono'
import { bodyLimit } from 'hono/body-limit'
import type { Deps } from '../platform/deps.ts'
import type { AppEnv } from '../platform/http.ts'
import {
  clickTarget,
  recordClick,
  recordOpen,
  unsubscribeByEmail,
  unsubscribedCategories,
  unsubscribeTarget,
} from './tracking.service.ts'
import { confirmPage, donePage, problemPage } from './unsubscribe-page.ts'

/** A transparent 1×1 GIF. */
const PIXEL = Buffer.from('R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7', 'base64')
const MAX_FORM_BYTES = 8 * 1024

const PAGE_HEADERS = {
  'cache-control': 'no-store',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
  'x-content-type-options': 'nosniff',
  'content-security-policy':
    "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
}

const notOurs = (c: Context<AppEnv>) =>
  c.html(
    problemPage('Link not found / リンクが見つかりません', 'This link is not valid.'),
    404,
    PAGE_HEADERS,
  )

/**
 * Hono answers HEAD with the GET handler. A HEAD comes from a link checker or a proxy probing
 * the URL, never from a person opening the mail or following the link: it records nothing.
 */
const isHead = (c: Context<AppEnv>) => c.req.method === 'HEAD'

/**
 * Email tracking: `GET /o/:token` (open pixel), `GET /r/:token` (tracked click → 302),
 * `GET|POST /u/:token` (unsubscribe: GET asks, POST `List-Unsubscribe=One-Click` does it, RFC 8058).
 * Opens and clicks are best effort: a database hiccup never breaks the image or the redirect.
 */
export function trackingRoutes(deps: Pick<Deps, 'db'>) {
  const app = new Hono<AppEnv>()

  app.get('/o/:token', async (c) => {
    try {
      if (!isHead(c)) await recordOpen(deps.db, c.req.param('token'))
    } catch (err) {
      c.get('log').warn({ err }, 'email open not recorded')
    }
    return c.body(new Uint8Array(PIXEL), 200, {
      'content-type': 'image/gif',
      'cache-control': 'no-store',
      'x-content-type-options': 'nosniff',
    })
  })

  app.get('/r/:token', async (c) => {
    // No query: the signing secret was loaded at start-up (startKizuna).
    const click = await clickTarget(deps.db, c.req.param('token'))
    if (!click) return notOurs(c)
    try {
      if (!isHead(c)) await recordClick(deps.db, click)
    } catch (err) {
      c.get('log').warn({ err }, 'email click not recorded')
    }
    return c.body(null, 302, {
      location: click.url,
      'cache-control': 'no-store',
      'referrer-policy': 'no-referrer',
    })
  })

  app.get('/u/:token', async (c) => {
    const token = c.req.param('token')
    const target = await unsubscribeTarget(deps.db, token)
    if (!target) return notOurs(c)
    return c.html(
      confirmPage(`/u/${token}`, unsubscribedCategories(target.category)),
      200,
      PAGE_HEADERS,
    )
  })

  app.post(
    '/u/:token',
    bodyLimit({
      maxSize: MAX_FORM_BYTES,
      onError: (c) =>
        c.html(problemPage('Unsubscribe / 配信停止', 'The form is too large.'), 413, PAGE_HEADERS),
    }),
    async (c) => {
      const target = await unsubscribeTarget(deps.db, c.req.param('token'))
      if (!target) return notOurs(c)
      const form = await c.req.parseBody().catch(() => ({}) as Record<string, unknown>)
      if (form['List-Unsubscribe'] !== 'One-Click') {
        return c.html(
          problemPage(
            'Unsubscribe / 配信停止',
            'Nothing was changed: use the button to unsubscribe.',
          ),
          400,
          PAGE_HEADERS,
        )
      }
      await unsubscribeByEmail(deps.db, target)
      return c.html(donePage(unsubscribedCategories(target.category)), 200, PAGE_HEADERS)
    },
  )

  return app
}
