import { serve } from '@hono/node-server'
import { Hono } from 'hono'

/** The baseline: a bare Hono server on the same runtime answering 200 to every webhook. */
const app = new Hono()
  .get('/healthz', (c) => c.json({ status: 'ok' }))
  .post('/webhooks/line', async (c) => {
    await c.req.arrayBuffer()
    return c.json({}, 200)
  })
serve({ fetch: app.fetch, port: Number(process.env.PORT), hostname: '127.0.0.1' })
