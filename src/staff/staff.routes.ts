import { readFileSync } from 'node:fs'
import { type Context, Hono } from 'hono'
import { bodyLimit } from 'hono/body-limit'
import { deleteCookie, getCookie, setCookie } from 'hono/cookie'
import { createMiddleware } from 'hono/factory'
import { basePath } from 'hono/route'
import { authenticate } from '../auth/api-key.service.ts'
import { memberCardNumberOf } from '../cards/cards.service.ts'
import type { Deps } from '../platform/deps.ts'
import { AppError } from '../platform/errors.ts'
import type { AppEnv } from '../platform/http.ts'
import { jsonInput, parseInput } from '../platform/input.ts'
import { POS_MAX_BYTES, voidPathReceiptId } from '../pos/pos.routes.ts'
import { voidParamsSchema } from '../pos/pos.schemas.ts'
import { scanMember, voidReceipt } from '../pos/pos.service.ts'
import { loginPage, scanPage } from './staff.pages.ts'
import { endStaffSession, findStoreById } from './staff.repo.ts'
import { staffLoginSchema, staffScanSchema } from './staff.schemas.ts'
import {
  STAFF_COOKIE,
  STAFF_SESSION_TTL_SECONDS,
  type StaffSession,
  signStaffSession,
  verifyStaffSession,
} from './staff-session.ts'

export type StaffDeps = Pick<Deps, 'db' | 'env' | 'clock' | 'queues' | 'log'>

const SCRIPT = readFileSync(new URL('./scan-page.js', import.meta.url), 'utf8')

/** No inline script, no third-party anything; the camera only for this origin. */
const securityHeaders = createMiddleware<AppEnv>(async (c, next) => {
  await next()
  c.header(
    'content-security-policy',
    "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; connect-src 'self'; " +
      "img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  )
  c.header('permissions-policy', 'camera=(self)')
  c.header('referrer-policy', 'same-origin')
  c.header('x-content-type-options', 'nosniff')
  c.header('cache-control', 'no-store')
})

/**
 * Staff pages at `/staff`: log in with a store's POS key, then scan member cards and record
 * receipts through the same service as `POST /api/pos/scans` (and void one, as
 * `POST /api/pos/receipts/:receiptId/void`). The key is checked once and
 * replaced by a signed, HttpOnly, SameSite=Strict session cookie; every POST must also come
 * from this origin (CSRF). Relative URLs keep the pages working under the mount path.
 */
/** The login form holds one key: anything larger is not it. */
const MAX_FORM_BYTES = 8 * 1024

const formLimit = bodyLimit({
  maxSize: MAX_FORM_BYTES,
  onError: (c) => c.html(loginPage('The form is too large.'), 413),
})

export function staffRoutes(deps: StaffDeps) {
  /** CSRF: browsers send `Origin` on every POST; it must be this server (or PUBLIC_BASE_URL). */
  const sameOrigin = createMiddleware<AppEnv>(async (c, next) => {
    const origin = c.req.header('origin')
    const own = new URL(c.req.url)
    const allowed =
      origin !== undefined && URL.canParse(origin) && new URL(origin).host === own.host
    const configured = deps.env.PUBLIC_BASE_URL && new URL(deps.env.PUBLIC_BASE_URL).origin
    if (!allowed && !(configured && origin === configured)) {
      throw new AppError('FORBIDDEN', 'cross-origin request refused: use the staff page itself')
    }
    await next()
  })
  const sessionOf = (c: Context<AppEnv>) =>
    verifyStaffSession(deps.db, getCookie(c, STAFF_COOKIE), deps.clock.now())
  /** The logged-in session's store, for a request that needs one: 401 without a session. */
  const storeOf = async (c: Context<AppEnv>) => {
    const session = await sessionOf(c)
    if (!session) throw new AppError('UNAUTHORIZED', 'your staff session ended: log in again')
    return { id: session.storeId, code: session.storeCode }
  }
  const publicUrl = deps.env.PUBLIC_BASE_URL ? new URL(deps.env.PUBLIC_BASE_URL) : undefined
  const publicHttps = publicUrl?.protocol === 'https:' ? publicUrl.host : undefined
  const cookieOptions = (c: Context<AppEnv>) => {
    const url = new URL(c.req.url)
    return {
      path: '/staff',
      httpOnly: true,
      sameSite: 'Strict' as const,
      // A TLS proxy need not say so (nginx sends no X-Forwarded-Proto unless told): a request
      // for PUBLIC_BASE_URL's https host is https too. Another host (a register on the LAN
      // over http) keeps a plain cookie, which such a browser can store.
      secure:
        url.protocol === 'https:' ||
        c.req.header('x-forwarded-proto') === 'https' ||
        url.host === publicHttps,
    }
  }

  async function logIn(c: Context<AppEnv>, rawKey: unknown): Promise<StaffSession> {
    const form = parseInput(staffLoginSchema, { key: rawKey })
    const caller = await authenticate(deps.db, `Bearer ${form.key}`, 'pos')
    const store = caller.storeId ? await findStoreById(deps.db, caller.storeId) : undefined
    if (!store) throw new AppError('FORBIDDEN', 'this API key does not belong to a store')
    const session = {
      keyId: caller.keyId,
      storeId: store.id,
      storeCode: store.code,
      storeName: store.name,
    }
    const expires = new Date(deps.clock.now().getTime() + STAFF_SESSION_TTL_SECONDS * 1000)
    const token = await signStaffSession(deps.db, session, expires)
    setCookie(c, STAFF_COOKIE, token, { ...cookieOptions(c), maxAge: STAFF_SESSION_TTL_SECONDS })
    return session
  }

  return (
    new Hono<AppEnv>()
      .use(securityHeaders)
      .get('/', (c) => c.redirect(`${basePath(c).replace(/\/$/, '')}/scan`))
      .get('/scan.js', (c) => c.body(SCRIPT, 200, { 'content-type': 'text/javascript' }))
      .get('/scan', async (c) => {
        const session = await sessionOf(c)
        return c.html(session ? scanPage(session) : loginPage())
      })
      .post('/login', sameOrigin, formLimit, async (c) => {
        // A body that is not a form reads as an empty one: "enter the key", not a 500.
        const body = await c.req.parseBody().catch(() => ({}) as Record<string, unknown>)
        try {
          await logIn(c, body.key)
        } catch (error) {
          if (!(error instanceof AppError)) throw error
          return c.html(loginPage(error.message), error.status)
        }
        return c.redirect('scan', 303)
      })
      .post('/logout', sameOrigin, formLimit, async (c) => {
        // Deleting the cookie alone would leave any copy of it working until it expires.
        const session = await sessionOf(c)
        if (session) {
          await endStaffSession(deps.db, session.sessionId, session.expiresAt, deps.clock.now())
        }
        deleteCookie(c, STAFF_COOKIE, cookieOptions(c))
        return c.redirect('scan', 303)
      })
      .post('/scan', sameOrigin, async (c) => {
        const store = await storeOf(c)
        const body = await jsonInput(c, staffScanSchema, POS_MAX_BYTES)
        const { answer, via } = await scanMember(deps, store, body)
        if (body.receipt) return c.json(answer, 200)
        // What the page records the member's receipts against: their member card when a card was
        // scanned (a legacy card's receipt goes to the member card). A coupon is no proof of who is
        // at the register: the page then records against the coupon, which allows only itself.
        const card = via === 'coupon' ? null : await memberCardNumberOf(deps.db, answer.customer.id)
        return c.json({ ...answer, card, via }, 200)
      })
      // A receipt of this store taken back (a mistyped total, a return), as the register API's void.
      // The answer says what the void did, not the member's balance: the receipt may have been
      // recorded against a coupon, which shows no balance.
      .post('/receipts/:receiptId/void', sameOrigin, async (c) => {
        const store = await storeOf(c)
        const { receiptId } = parseInput(voidParamsSchema, {
          receiptId: voidPathReceiptId(c.req.url),
        })
        const { purchase } = await voidReceipt(deps, store, receiptId)
        return c.json({ purchase }, 200)
      })
  )
}
