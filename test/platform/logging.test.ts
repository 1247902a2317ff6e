import { randomUUID } from 'node:crypto'
import { Writable } from 'node:stream'
import { afterAll, describe, expect, it } from 'vitest'
import { startKizuna } from '../../src/main/runtime.ts'
import { createLogger } from '../../src/platform/logger.ts'
import { startLinePlatform } from '../../src/sandbox/platform.ts'
import { TEST_CHANNEL_SECRET, TEST_CHANNEL_TOKEN, testEnv } from '../support/harness.ts'
import { eventually } from '../support/wait.ts'

const cleanups: (() => Promise<void>)[] = []
afterAll(async () => {
  for (const fn of cleanups.reverse()) await fn()
})

describe('logs', () => {
  it('carry no LINE user ids, names or message texts through a whole conversation', async () => {
    const lines: string[] = []
    const sink = new Writable({
      write(chunk, _enc, done) {
        lines.push(String(chunk))
        done()
      },
    })
    const line = await startLinePlatform({
      channelSecret: TEST_CHANNEL_SECRET,
      channelAccessToken: TEST_CHANNEL_TOKEN,
    })
    cleanups.push(() => line.close())
    const env = testEnv({
      LOG_LEVEL: 'trace',
      LINE_API_BASE_URL: line.apiBaseUrl,
      LINE_DATA_API_BASE_URL: line.dataApiBaseUrl,
    })
    const k = await startKizuna(env, {
      log: createLogger('trace', sink),
      queuePrefix: `test-${randomUUID()}`,
    })
    cleanups.push(() => k.stop())
    line.setWebhookUrl(`${k.baseUrl}/webhooks/line`)

    const user = line.users.create({ displayName: 'Secret Name' })
    // A refused reply (the push follows, logging why) exercises one more log line.
    line.failNext({
      method: 'POST',
      path: '/v2/bot/message/reply',
      status: 400,
      body: { message: 'Invalid reply token' },
    })
    await line.users.follow(user.userId)
    await line.users.sendText(user.userId, 'my phone is 090-1234-5678')
    await line.users.postback(user.userId, 'action=unknown-thing')
    await eventually(() => expect(line.inbox(user.userId)).toHaveLength(1))
    await eventually(() => expect(lines.join('')).toContain('no route for this event'))

    // Every request's line carries the request id its answer had.
    const res = await fetch(`${k.baseUrl}/healthz`)
    const requestId = res.headers.get('x-request-id')
    await eventually(() =>
      expect(lines.map((l) => JSON.parse(l))).toContainEqual(
        expect.objectContaining({ msg: 'request', route: '/healthz', requestId, status: 200 }),
      ),
    )
    const requests = lines.map((l) => JSON.parse(l)).filter((l) => l.msg === 'request')
    expect(requests.filter((r) => r.route === '/webhooks/line').length).toBeGreaterThanOrEqual(3)
    for (const r of requests) expect(r.requestId).toEqual(expect.any(String))

    const all = lines.join('')
    expect(lines.length).toBeGreaterThan(3)
    expect(all).not.toContain(user.userId)
    expect(all).not.toContain('Secret Name')
    expect(all).not.toContain('090-1234-5678')
  })
})
