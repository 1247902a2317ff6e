import { Hono } from 'hono'
import { createMessageRoutes } from './message.routes.ts'
import { requestPipeline, type SandboxEnv } from './request-pipeline.ts'
import { createRichMenuRoutes } from './richmenu.routes.ts'
import { isFriend, randomHex, type SandboxContext, USER_ID } from './state.ts'

const LINK_TOKEN_TTL_MS = 10 * 60 * 1000

/** The api host (`https://api.line.me`): everything under `/v2/bot/...` except binary content. */
export function createLineApiApp(ctx: SandboxContext) {
  const app = new Hono<SandboxEnv>()
  app.use('*', requestPipeline(ctx, 'api'))

  app.route('/v2/bot/message', createMessageRoutes(ctx))
  app.route('/', createRichMenuRoutes(ctx))

  app.get('/v2/bot/profile/:userId', (c) => {
    const userId = c.req.param('userId')
    if (!USER_ID.test(userId)) return c.json({ message: 'Invalid userId' }, 400)
    const user = ctx.state.users.get(userId)
    if (!user || !isFriend(ctx, userId)) return c.json({ message: 'Not found' }, 404)
    const { displayName, language, pictureUrl, statusMessage } = user
    return c.json({ userId, displayName, language, pictureUrl, statusMessage })
  })

  app.get('/v2/bot/info', (c) =>
    c.json({
      userId: ctx.botUserId,
      basicId: `@${ctx.botUserId.slice(1, 9)}`,
      displayName: 'Kizuna Sandbox',
      chatMode: 'bot',
      markAsReadMode: 'auto',
    }),
  )

  app.post('/v2/bot/user/:userId/linkToken', (c) => {
    const userId = c.req.param('userId')
    if (!USER_ID.test(userId)) return c.json({ message: 'Invalid userId' }, 400)
    if (!ctx.state.users.has(userId)) return c.json({ message: 'Not found' }, 404)
    const linkToken = randomHex(16)
    ctx.state.linkTokens.set(linkToken, { userId, expiresAt: ctx.now() + LINK_TOKEN_TTL_MS })
    return c.json({ linkToken })
  })

  return withErrorHandlers(app)
}

/** LINE-shaped 404 and 500 bodies. */
export function withErrorHandlers(app: Hono<SandboxEnv>) {
  app.notFound((c) => c.json({ message: 'Not found' }, 404))
  app.onError((error, c) => c.json({ message: `The LINE sandbox failed: ${error.message}` }, 500))
  return app
}
