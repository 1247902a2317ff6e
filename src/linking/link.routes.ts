import { type Context, Hono, type MiddlewareHandler } from 'hono'
import { bodyLimit } from 'hono/body-limit'
import type { ContentfulStatusCode } from 'hono/utils/http-status'
import type { Mailer } from '../email/mailer.ts'
import { sandboxMailRoutes } from '../email/sandbox-mailbox.ts'
import type { Deps } from '../platform/deps.ts'
import { AppError } from '../platform/errors.ts'
import { type AppEnv, onError as appError } from '../platform/http.ts'
import { BAD_SIGNATURE, verifyLinkAssertion } from './link-assertion.ts'
import {
  addressOfCode,
  addressToShowAgain,
  checkLinkToken,
  codeIdToShowAgain,
  issueNonceRedirect,
  LINE_ACCOUNT_LINK_URL,
  requestLinkCode,
  verifyLinkCode,
} from './link-login.service.ts'
import { codePage, emailPage, errorPage } from './link-page.ts'
import {
  formTooLarge,
  LinkTokenRefusal,
  linkingNotOffered,
  loginExpired,
  loginUnchecked,
  notUsedHere,
  SOMETHING_WENT_WRONG,
} from './link-page-errors.ts'
import { accountProof } from './link-proof.ts'

const MAX_FORM_BYTES = 8 * 1024

const HEADERS = {
  'cache-control': 'no-store',
  'x-frame-options': 'DENY',
  'x-content-type-options': 'nosniff',
  'content-security-policy':
    "default-src 'none'; style-src 'unsafe-inline'; form-action 'self' https://access.line.me; frame-ancestors 'none'",
}

type LinkDeps = Pick<Deps, 'db' | 'env' | 'clock' | 'log' | 'mail' | 'metrics'>

/** The bad-signature warning at most this often: anyone may send /link/callback bad ones. */
const BAD_SIGNATURE_WARN_EVERY_MS = 60_000

/**
 * `GET /link?linkToken=…`: the shopper proves their online account (email + one-time code,
 * or the shop's own login when LINK_LOGIN_URL is set), then goes to LINE's account-link dialog
 * with a nonce. Also `/sandbox/mail` on sandbox runs without SMTP_URL.
 */
export function linkRoutes(
  deps: LinkDeps,
  mailer: Mailer,
  opts: {
    /** Where the shopper confirms the link: LINE's dialog, or the sandbox's stand-in. */
    accountLinkDialogUrl?: string
  } = {},
) {
  const dialogUrl = opts.accountLinkDialogUrl ?? LINE_ACCOUNT_LINK_URL
  const proof = accountProof(deps)
  const shopLogin = proof?.kind === 'shop-login' ? proof : null
  const limit = bodyLimit({
    maxSize: MAX_FORM_BYTES,
    onError: (c) => c.html(errorPage(formTooLarge().message), 413, HEADERS),
  })
  let badSignatureWarnedAt = Number.NEGATIVE_INFINITY
  /**
   * Every shopper sees "bad signature" when the two secrets differ: the operator is told, at
   * most once a minute (the callback needs no login, so a warning per request would let anyone
   * flood the log); the counter has every one.
   */
  const badSignature = () => {
    deps.metrics.linkAssertionBadSignatures.inc()
    const now = deps.clock.now().getTime()
    if (now - badSignatureWarnedAt < BAD_SIGNATURE_WARN_EVERY_MS) return
    badSignatureWarnedAt = now
    deps.log.warn(
      "shop login assertion refused: bad signature; check that LINK_ASSERTION_SECRET is the shop login's secret (kizuna_link_assertion_bad_signatures_total counts them; warned at most once a minute)",
    )
  }
  const app = new Hono<AppEnv>()
  // The email-code routes serve only when codes are the proof. With the shop's own login, it is
  // the only proof: a link token posted straight to them would prove an account by email
  // instead, around the shop's password. They are not there (404, writing nothing), as
  // /link/callback is not without the shop login. With no proof at all, they say what GET /link
  // says (linking is not available yet) and write nothing.
  const emailCodesOnly: MiddlewareHandler<AppEnv> = async (c, next) => {
    const refused = !proof ? linkingNotOffered() : shopLogin ? notUsedHere() : null
    if (!refused) return next()
    return c.html(errorPage(refused.message), refused.status, HEADERS)
  }

  app.get('/link', async (c) => {
    const linkToken = c.req.query('linkToken')
    return page(c, async () => {
      // A link token issued before email was turned off: say so rather than ask for an email.
      if (!proof) throw linkingNotOffered()
      const token = await checkLinkToken(deps, linkToken)
      if (shopLogin) {
        // The link token alone: the shop returns to the callback it was configured with
        // (PUBLIC_BASE_URL + /link/callback), never to a place a request names. A returnTo here
        // would tell the shop that taking one is fine, and then a login URL an attacker sent
        // with their own link token and their own returnTo would hand them the victim's
        // assertion, linking the victim's shop account to the attacker's LINE (LINE's dialog
        // only refuses a user who is not the link token's, and the attacker is).
        const to = new URL(shopLogin.url)
        to.searchParams.set('linkToken', token.linkToken)
        return c.redirect(to.toString(), 302)
      }
      return c.html(emailPage({ linkToken: token.linkToken }), 200, HEADERS)
    })
  })

  app.post('/link/email', emailCodesOnly, limit, async (c) => {
    const form = await readForm(c)
    return page(
      c,
      async () => {
        const token = await checkLinkToken(deps, form.linkToken)
        const sent = await requestLinkCode(deps, mailer, token, form.email)
        return c.html(codePage({ linkToken: token.linkToken, ...sent }), 200, HEADERS)
      },
      (message) =>
        emailPage({
          linkToken: form.linkToken ?? '',
          email: addressToShowAgain(form.email),
          error: message,
        }),
    )
  })

  app.post('/link/code', emailCodesOnly, limit, async (c) => {
    const form = await readForm(c)
    return page(
      c,
      async () => {
        const token = await checkLinkToken(deps, form.linkToken)
        const url = await verifyLinkCode(
          deps,
          token,
          { codeId: form.codeId, code: form.code },
          dialogUrl,
        )
        return c.redirect(url, 302)
      },
      async (message) =>
        codePage({
          linkToken: form.linkToken ?? '',
          codeId: codeIdToShowAgain(form.codeId),
          email: await addressOfCode(deps, form.linkToken, form.codeId),
          error: message,
        }),
    )
  })

  app.get('/link/callback', async (c) => {
    const assertion = c.req.query('assertion')
    return page(c, async () => {
      if (!shopLogin) throw notUsedHere()
      let verified: ReturnType<typeof verifyLinkAssertion>
      try {
        verified = verifyLinkAssertion(shopLogin.secret, assertion, deps.clock.now())
      } catch (error) {
        if (!(error instanceof AppError)) throw error
        // Why is for the shop's developer (it names no one); the shopper can only start again.
        if (error.message === BAD_SIGNATURE) badSignature()
        else deps.log.info({ why: error.message }, 'shop login assertion refused')
        throw error.code === 'GONE' ? loginExpired() : loginUnchecked()
      }
      const token = await checkLinkToken(deps, verified.linkToken)
      const url = await issueNonceRedirect(deps, token, verified.identity, dialogUrl, {
        assertionHash: verified.hash,
      })
      return c.redirect(url, 302)
    })
  })

  if (mailer.kind === 'sandbox') app.route('/sandbox/mail', sandboxMailRoutes(deps.db))
  return app
}

async function readForm(c: Context<AppEnv>): Promise<Record<string, string | undefined>> {
  const raw = await c.req.parseBody().catch(() => ({}))
  return Object.fromEntries(
    Object.entries(raw).map(([k, v]) => [k, typeof v === 'string' ? v : undefined]),
  )
}

/**
 * Runs a page handler; an AppError (its message is for the shopper: link-page-errors.ts) becomes
 * the given page (or an error page) with its status. Any other error is logged and given its
 * status as elsewhere (503 for an unreachable database, else 500), on an error page.
 */
async function page(
  c: Context<AppEnv>,
  run: () => Promise<Response>,
  onError: (message: string) => ReturnType<typeof errorPage> = errorPage,
): Promise<Response> {
  try {
    return await run()
  } catch (error) {
    if (!(error instanceof AppError)) {
      const { status } = await appError(error as Error, c)
      return c.html(errorPage(SOMETHING_WENT_WRONG), status as ContentfulStatusCode, HEADERS)
    }
    // Link-token problems cannot be fixed on the form: show them on their own.
    const fatal = error instanceof LinkTokenRefusal
    return c.html((fatal ? errorPage : onError)(error.message), error.status, HEADERS)
  }
}
