import { Hono, type MiddlewareHandler } from 'hono'
import { cardRoutes } from './cards/cards.routes.ts'
import { LOOPBACK_HOSTNAMES } from './config/env.ts'
import { consentRoutes } from './consent/consent.routes.ts'
import { customerTagRoutes } from './customers/customer-tags.routes.ts'
import { customerRoutes } from './customers/customers.routes.ts'
import type { Mailer } from './email/mailer.ts'
import { linkRoutes } from './linking/link.routes.ts'
import { opsRoutes } from './ops/ops.routes.ts'
import { orderRoutes } from './orders/orders.routes.ts'
import type { Deps } from './platform/deps.ts'
import { AppError } from './platform/errors.ts'
import { type AppEnv, notFound, onError, requestContext } from './platform/http.ts'
import { posRoutes } from './pos/pos.routes.ts'
import { staffRoutes } from './staff/staff.routes.ts'
import { trackingRoutes } from './tracking/tracking.routes.ts'
import type { Inbox } from './webhook/inbox.ts'
import { webhookRoutes } from './webhook/webhook.routes.ts'

export type AppOptions = {
  inbox: Inbox
  /** The process's one mailer (account-link codes; the workers send message email with it). */
  mailer: Mailer
  /** Mounted at /sandbox when Kizuna runs against the built-in LINE platform. */
  sandboxUi?: Hono
}

/** The whole HTTP surface; never listens (src/main/server.ts does). */
export function createApp(deps: Deps, opts: AppOptions) {
  const app = new Hono<AppEnv>()
  app.use(...requestContext(deps.log, deps.metrics))
  app.onError(onError)
  app.notFound(notFound)
  if (opts.sandboxUi) app.use(loopbackHostOnly)
  // Browsers ask for it on every page: no icon, and no 404 in their consoles and our logs.
  app.get('/favicon.ico', (c) => c.body(null, 204))
  app.route('/', opsRoutes(deps))
  app.route('/webhooks', webhookRoutes(deps, opts.inbox))
  app.route('/cards', cardRoutes(deps))
  app.route('/api/customers', customerRoutes(deps))
  app.route('/api/customers', consentRoutes(deps))
  app.route('/api/customers', customerTagRoutes(deps))
  app.route('/api/orders', orderRoutes(deps))
  app.route('/api/pos', posRoutes(deps))
  app.route('/staff', staffRoutes(deps))
  app.route('/', trackingRoutes(deps))
  app.route(
    '/',
    linkRoutes(deps, opts.mailer, {
      // The sandbox page stands in for LINE's account-link dialog (a path on this server, so
      // the link page's CSP form-action 'self' allows the redirect after the code form).
      accountLinkDialogUrl: opts.sandboxUi ? '/sandbox/dialog/bot/accountLink' : undefined,
    }),
  )
  if (opts.sandboxUi) {
    app.route('/sandbox', opts.sandboxUi)
    // `npm start` prints the root's address first: a newcomer opening it lands on the phone.
    app.get('/', (c) => c.redirect('/sandbox/'))
  }
  return app
}

/**
 * A sandbox run listens on loopback only, but a web page whose name its owner re-points at
 * 127.0.0.1 (DNS rebinding) reaches the port from the browser and reads the answers: /sandbox
 * (act as any LINE user) and /sandbox/mail (link codes, addresses). Its requests name its own
 * host, so only loopback names are answered. PUBLIC_BASE_URL's host is not one of them: a proxy
 * on this host passing on the Host of shoppers' requests made the sandbox public (loadEnv
 * refuses a public PUBLIC_BASE_URL without LINE credentials, and a loopback one is listed).
 */
const loopbackHostOnly: MiddlewareHandler<AppEnv> = async (c, next) => {
  const host = c.req.header('host') ?? ''
  const name = URL.canParse(`http://${host}`) ? new URL(`http://${host}`).hostname : ''
  if (!LOOPBACK_HOSTNAMES.has(name)) {
    throw new AppError('FORBIDDEN', 'a sandbox run answers only at 127.0.0.1 or localhost')
  }
  await next()
}
