/**
 * The LINE stand-in as its own process for the delivery benchmark: LINE's push limit, every
 * request validated against LINE's OpenAPI spec, and the arrival time of every push recorded.
 * Env: STANDIN_PORT, STANDIN_USERS (user ids file, one per line), STANDIN_SECRET, STANDIN_TOKEN,
 * STANDIN_LATENCY_MS (default 0: the round trip to LINE, added before every answer, as from a
 * server far from LINE's).
 * `GET /bench/stats` on the same port answers the push count, 2xx count and the most pushes
 * seen in any one-second window.
 */
import { readFileSync } from 'node:fs'
import { serve } from '@hono/node-server'
import { createLinePlatform } from '../src/sandbox/platform.ts'

const platform = createLinePlatform({
  channelSecret: process.env.STANDIN_SECRET ?? 'bench-secret',
  channelAccessToken: process.env.STANDIN_TOKEN ?? 'bench-token',
})
const now = Date.now()
for (const userId of readFileSync(process.env.STANDIN_USERS ?? '', 'utf8').split('\n')) {
  if (!userId) continue
  platform.context.state.users.set(userId, {
    userId,
    displayName: 'Bench user',
    language: 'ja',
    friendship: 'friend',
    createdAt: now,
  })
}

const LATENCY_MS = Number(process.env.STANDIN_LATENCY_MS ?? 0)
const arrivals: number[] = []
let accepted = 0
// The bench sends 100k messages: keep counts, not the recorded requests and inboxes. Dropped
// often, so they die young: kept a second, they reached the old generation and its collections
// paused the stand-in (a push's latency went from 4 ms at the median to 100 ms at worst).
setInterval(() => {
  platform.context.state.requests.length = 0
  platform.context.state.inboxes.clear()
}, 50).unref()

serve({
  port: Number(process.env.STANDIN_PORT),
  hostname: '127.0.0.1',
  async fetch(req) {
    const { pathname } = new URL(req.url)
    if (pathname === '/bench/stats') {
      const t0 = arrivals[0] ?? 0
      const perSecond: number[] = []
      for (const t of arrivals) {
        const i = Math.floor((t - t0) / 1000)
        perSecond[i] = (perSecond[i] ?? 0) + 1
      }
      return Response.json({
        pushes: arrivals.length,
        accepted,
        maxWindow: maxWindow(arrivals),
        perSecond,
      })
    }
    if (pathname === '/bench/ready') return new Response('ok')
    if (pathname === '/bench/reset') {
      arrivals.length = 0
      accepted = 0
      return new Response('ok')
    }
    if (pathname === '/bench/accepted') return Response.json({ accepted })
    const push = pathname === '/v2/bot/message/push'
    if (push) arrivals.push(performance.now())
    const res = await platform.apiApp.fetch(req)
    if (LATENCY_MS > 0) await new Promise((r) => setTimeout(r, LATENCY_MS))
    if (push && res.status === 200) accepted += 1
    return res
  },
})

/** The most arrivals within any 1,000 ms (two pointers over the sorted times). */
function maxWindow(times: number[]): number {
  let best = 0
  let start = 0
  for (let end = 0; end < times.length; end++) {
    while (times[end]! - times[start]! >= 1_000) start++
    best = Math.max(best, end - start + 1)
  }
  return best
}
process.on('SIGTERM', () => process.exit(0))
