import { Hono } from 'hono'
import { withErrorHandlers } from './api.routes.ts'
import { requestPipeline, type SandboxEnv } from './request-pipeline.ts'
import type { SandboxContext } from './state.ts'

const IMAGE_TYPES = ['image/png', 'image/jpeg']
const MAX_IMAGE_BYTES = 1024 * 1024

/** The data host (`https://api-data.line.me`): rich-menu images. */
export function createLineDataApp(ctx: SandboxContext) {
  const app = new Hono<SandboxEnv>()
  app.use('*', requestPipeline(ctx, 'data'))

  app.post('/v2/bot/richmenu/:richMenuId/content', (c) => {
    const menu = ctx.state.richMenus.get(c.req.param('richMenuId'))
    if (!menu) return c.json({ message: 'Not found' }, 404)
    const contentType = (c.req.header('content-type') ?? '').split(';')[0]?.trim().toLowerCase()
    if (!contentType || !IMAGE_TYPES.includes(contentType)) {
      return c.json({ message: 'Unsupported Media Type' }, 415)
    }
    const bytes = c.get('rawBody')
    if (bytes.byteLength === 0) return c.json({ message: 'The request body is empty' }, 400)
    if (bytes.byteLength > MAX_IMAGE_BYTES) {
      return c.json({ message: 'The image size must be 1 MB or less' }, 400)
    }
    if (menu.image) {
      return c.json({ message: 'An image has already been uploaded to the richmenu' }, 400)
    }
    menu.image = { contentType, bytes }
    return c.json({})
  })

  app.get('/v2/bot/richmenu/:richMenuId/content', (c) => {
    const image = ctx.state.richMenus.get(c.req.param('richMenuId'))?.image
    if (!image) return c.json({ message: 'Not found' }, 404)
    return c.body(image.bytes.slice().buffer, 200, { 'content-type': image.contentType })
  })

  return withErrorHandlers(app)
}
