import { Hono } from 'hono'
import { imageSize } from 'image-size'
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
    const problem = imageProblem(bytes)
    if (problem) return c.json({ message: problem }, 400)
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

/**
 * LINE's rule on a rich menu image (LINE-API.md §4): PNG or JPEG, 800 to 2500 pixels wide, at
 * least 250 high, width / height at least 1.45.
 */
function imageProblem(bytes: Uint8Array): string | undefined {
  let dims: { type?: string; width?: number; height?: number }
  try {
    dims = imageSize(bytes)
  } catch {
    return 'The image could not be read as PNG or JPEG'
  }
  const { type, width = 0, height = 0 } = dims
  if (type !== 'png' && type !== 'jpg') return 'The image must be PNG or JPEG'
  if (width < 800 || width > 2500 || height < 250 || width / height < 1.45) {
    return `The image size ${width}x${height} is invalid: width 800 to 2500, height 250 or more, width / height 1.45 or more`
  }
  return undefined
}
