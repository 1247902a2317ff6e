import { randomUUID } from 'node:crypto'
import pg from 'pg'
import { afterEach, expect } from 'vitest'
import { type Kizuna, type StartOptions, startKizuna } from '../../src/main/runtime.ts'
import { insertDeliveries } from '../../src/messaging/delivery.repo.ts'
import { createLogger } from '../../src/platform/logger.ts'
import { type LinePlatform, startLinePlatform } from '../../src/sandbox/platform.ts'
import { campaign } from '../messaging/support.ts'
import { testEnv } from '../support/harness.ts'
import { logSink } from '../support/log-sink.ts'
import { createPrivateDatabase } from '../support/private-database.ts'
import { eventually } from '../support/wait.ts'

export type Database = Awaited<ReturnType<typeof createPrivateDatabase>>

/** The settings of a Kizuna on `database` whose LINE credentials are `line`'s. */
export function settings(
  database: Database,
  line: LinePlatform,
  overrides: Record<string, string> = {},
) {
  return {
    DATABASE_URL: database.url,
    LINE_CHANNEL_SECRET: line.channelSecret,
    LINE_CHANNEL_ACCESS_TOKEN: line.channelAccessToken,
    LINE_API_BASE_URL: line.apiBaseUrl,
    LINE_DATA_API_BASE_URL: line.dataApiBaseUrl,
    ...overrides,
  }
}

/** The LINE calls a stand-in received, as `GET /v2/bot/info`. */
export const calls = (line: LinePlatform) => line.requests.map((r) => `${r.method} ${r.path}`)

/** Rows of `text` on the database, read on a connection of the test's own. */
export async function query<T>(
  database: Database,
  text: string,
  values: unknown[] = [],
): Promise<T[]> {
  const client = new pg.Client({ connectionString: database.url })
  await client.connect()
  try {
    return (await client.query(text, values)).rows as T[]
  } finally {
    await client.end()
  }
}

export const channelRows = (database: Database) =>
  query<{ bot_user_id: string; recorded_at: Date }>(
    database,
    'select bot_user_id, recorded_at from line_channel',
  )

export const deliveryStatus = async (database: Database, id: string) =>
  (await query<{ status: string }>(database, 'select status from delivery where id = $1', [id]))[0]
    ?.status

export async function stopKizuna(k: Kizuna): Promise<void> {
  const queues = Object.values(k.deps.queues.byName)
  await Promise.all(queues.map((q) => q.obliterate({ force: true }).catch(() => {})))
  await k.stop()
}

/**
 * A test file's databases of their own, LINE channels (stand-ins) and Kizunas, closed after each
 * of its tests (registered in the file calling it).
 */
export function useLineChannels() {
  let cleanups: (() => Promise<unknown>)[] = []
  afterEach(async () => {
    for (const fn of cleanups.reverse()) await fn()
    cleanups = []
  })

  async function privateDatabase(): Promise<Database> {
    const database = await createPrivateDatabase()
    cleanups.push(() => database.drop())
    return database
  }

  /** A stand-in for the channel whose secret is `name`'s (its bot user id follows from it). */
  async function channel(name: string): Promise<LinePlatform> {
    const line = await startLinePlatform({
      channelSecret: `${name}-secret`,
      channelAccessToken: `${name}-token`,
    })
    cleanups.push(() => line.close())
    return line
  }

  /**
   * startKizuna (ROLE=all, deploying richmenus/ as `npm start` does unless told not to) on
   * `database`, with `line`'s credentials or none (the sandbox), its log kept.
   */
  async function start(
    database: Database,
    line: LinePlatform | null,
    opts: { env?: Record<string, string>; start?: StartOptions } = {},
  ) {
    const logs = logSink()
    const env = line
      ? settings(database, line, opts.env)
      : {
          DATABASE_URL: database.url,
          LINE_CHANNEL_SECRET: '',
          LINE_CHANNEL_ACCESS_TOKEN: '',
          ...opts.env,
        }
    const k = await startKizuna(testEnv(env), {
      queuePrefix: `test-${randomUUID()}`,
      log: createLogger('info', logs.sink),
      catchUpNightly: false,
      ...opts.start,
    })
    cleanups.push(() => stopKizuna(k))
    if (line) line.setWebhookUrl(`${k.baseUrl}/webhooks/line`)
    return { k, logs }
  }

  /**
   * A database that served channel A: its first start recorded A, a friend followed through A,
   * and a delivery to them is left unfinished (pending, due, transactional: no quiet hours).
   * Kizuna is stopped.
   */
  async function databaseOfChannelA() {
    const database = await privateDatabase()
    const a = await channel('channel-a')
    const { k } = await start(database, a, { start: { deployRichMenus: false } })
    const rows = await channelRows(database)
    const user = a.users.create()
    expect((await a.users.follow(user.userId))?.status).toBe(200)
    const customerId = await eventually(async () => {
      const row = await k.deps.db
        .selectFrom('line_user')
        .select('customer_id')
        .where('line_uid', '=', user.userId)
        .executeTakeFirst()
      expect(row?.customer_id).toBeTruthy()
      return row!.customer_id as string
    })
    const friend = { userId: user.userId, customerId, displayName: '友だち' }
    const [pending] = await insertDeliveries(k.deps.db, [
      campaign(friend, { category: 'transactional' }),
    ])
    await stopKizuna(k)
    return { database, a, rows, deliveryId: pending!.id, customerId }
  }

  return {
    privateDatabase,
    channel,
    start,
    databaseOfChannelA,
    onCleanup: (fn: () => Promise<unknown>) => cleanups.push(fn),
  }
}
