import { createHmac, randomUUID } from 'node:crypto'
import { type Env, loadEnv } from '../../src/config/env.ts'
import { type Kizuna, startKizuna } from '../../src/main/runtime.ts'
import { createLogger, type Logger } from '../../src/platform/logger.ts'
import { type LinePlatform, startLinePlatform } from '../../src/sandbox/platform.ts'
import { OFFICIAL_VECTOR, TEST_DATABASE_URL, TEST_REDIS_URL } from './env.ts'

/**
 * The test channel's: every stand-in of a test on the shared test database takes it, so all are
 * one LINE channel (one bot user id), the one global-setup.ts records the database serves.
 */
export const TEST_CHANNEL_SECRET = OFFICIAL_VECTOR.secret
export const TEST_CHANNEL_TOKEN = 'test-channel-access-token'

export function testEnv(overrides: Record<string, string> = {}): Env {
  return loadEnv({
    PORT: '0',
    DATABASE_URL: TEST_DATABASE_URL,
    REDIS_URL: TEST_REDIS_URL,
    LOG_LEVEL: 'silent',
    LINE_CHANNEL_SECRET: TEST_CHANNEL_SECRET,
    LINE_CHANNEL_ACCESS_TOKEN: TEST_CHANNEL_TOKEN,
    SWEEP_INTERVAL_MS: '3600000',
    // Wanted with SMTP_URL, as an operator sets it.
    MAIL_FROM: 'Kizuna Shop <shop@kizuna.test>',
    ...overrides,
  })
}

export type TestKizuna = Kizuna & { line: LinePlatform; stopAll(): Promise<void> }

/**
 * Kizuna for real (HTTP server, workers, Postgres, Redis) against its own LINE stand-in,
 * with a private BullMQ prefix so test files never see each other's jobs.
 */
export async function startTestKizuna(
  overrides: Record<string, string> = {},
  /** lineStandIn: false = a Kizuna not told its LINE is the stand-in (as one behind a proxy). */
  opts: {
    deployRichMenus?: boolean
    /** Queue the nightly jobs missed at start, as `npm start` does (on a database of its own). */
    catchUpNightly?: boolean
    log?: Logger
    lineStandIn?: boolean
  } = {},
): Promise<TestKizuna> {
  const line = await startLinePlatform({
    channelSecret: TEST_CHANNEL_SECRET,
    channelAccessToken: TEST_CHANNEL_TOKEN,
  })
  const env = testEnv({
    LINE_API_BASE_URL: line.apiBaseUrl,
    LINE_DATA_API_BASE_URL: line.dataApiBaseUrl,
    ...overrides,
  })
  const prefix = `test-${randomUUID()}`
  const kizuna = await startKizuna(env, {
    queuePrefix: prefix,
    log: opts.log ?? createLogger(env.LOG_LEVEL),
    // The shipped richmenus/ would be every test's menus: only tests that ask get them.
    deployRichMenus: opts.deployRichMenus ?? false,
    // The nightly jobs would run on the shared test database (re-tiering everyone under this
    // test's thresholds): only tests that ask get them.
    catchUpNightly: opts.catchUpNightly ?? false,
    lineStandIn: opts.lineStandIn ?? true,
  })
  if (kizuna.baseUrl) line.setWebhookUrl(`${kizuna.baseUrl}/webhooks/line`)
  return {
    ...kizuna,
    line,
    async stopAll() {
      const queues = Object.values(kizuna.deps.queues.byName)
      await Promise.all(queues.map((q) => q.obliterate({ force: true }).catch(() => {})))
      await kizuna.stop()
      await line.close()
    },
  }
}

export function sign(body: string, secret = TEST_CHANNEL_SECRET): string {
  return createHmac('sha256', secret).update(body).digest('base64')
}

/** POSTs a raw body to the webhook with a real signature (or the one given). */
export async function postWebhook(
  baseUrl: string,
  body: string,
  headers: Record<string, string> = { 'x-line-signature': sign(body) },
): Promise<Response> {
  return fetch(`${baseUrl}/webhooks/line`, {
    method: 'POST',
    headers: { 'content-type': 'application/json; charset=utf-8', ...headers },
    body,
  })
}

export type ErrorBody = { code: string; message: string; requestId: string; details?: unknown }

/** Reads Kizuna's one error shape `{ error: { code, message, requestId } }`. */
export async function errorOf(res: Response): Promise<ErrorBody> {
  const body = (await res.json()) as { error: ErrorBody }
  return body.error
}
