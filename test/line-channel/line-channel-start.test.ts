import { randomUUID } from 'node:crypto'
import { once } from 'node:events'
import { describe, expect, it } from 'vitest'
import { createMigrator } from '../../src/main/migrate.ts'
import { enqueueDeliveries } from '../../src/messaging/delivery.service.ts'
import { SANDBOX_BOT_USER_ID } from '../../src/sandbox/sandbox-channel.ts'
import { plainKysely } from '../support/private-database.ts'
import { spawnKizuna } from '../support/spawned.ts'
import { eventually } from '../support/wait.ts'
import {
  calls,
  channelRows,
  type Database,
  deliveryStatus,
  query,
  settings,
  stopKizuna,
  useLineChannels,
} from './support.ts'

const { privateDatabase, channel, start, databaseOfChannelA, onCleanup } = useLineChannels()

describe('one database, one LINE channel: at start', () => {
  it("records the channel at a new database's first start, and starts again with it", async () => {
    const { database, a, rows } = await databaseOfChannelA()
    expect(rows.map((r) => r.bot_user_id)).toEqual([a.botUserId])
    const { k } = await start(database, a, { start: { deployRichMenus: false } })
    expect(k.sandbox).toBeNull()
    expect(await channelRows(database)).toEqual(rows)
  })

  it("refuses another channel's credentials: names both bots and what to do, sends and writes nothing", async () => {
    const { database, a, rows, deliveryId } = await databaseOfChannelA()
    const b = await channel('channel-b')

    // As `npm start` runs: rich menus deployed at start, the sweeper every second.
    const refused = start(database, b, { env: { SWEEP_INTERVAL_MS: '1000' } })
    await expect(refused).rejects.toThrow(
      new RegExp(
        `^The database at DATABASE_URL \\(postgres://[^)]*\\) serves another LINE channel: it ` +
          `records LINE bot ${a.botUserId} \\(since [^)]+\\), but the LINE credentials ` +
          `\\(LINE_CHANNEL_SECRET, LINE_CHANNEL_ACCESS_TOKEN, at LINE_API_BASE_URL ` +
          `${b.apiBaseUrl}\\) are LINE bot ${b.botUserId}'s\\. Kizuna will not start\\. ` +
          'Nothing was sent to LINE or changed in the database\\. One database serves one ' +
          'LINE channel: .*`npx kizuna line-channel adopt`.*new users',
      ),
    )
    await new Promise((resolve) => setTimeout(resolve, 1_500))
    // Asked who it is, and nothing else: no delivery, no rich menu list or creation.
    expect(calls(b)).toEqual(['GET /v2/bot/info'])
    expect(await channelRows(database)).toEqual(rows)
    expect(await deliveryStatus(database, deliveryId)).toBe('pending')
  })

  it('exits 1 from `npm start` with the message', async () => {
    const { database, a } = await databaseOfChannelA()
    const b = await channel('channel-b')
    const spawned = await spawnKizuna({
      ...settings(database, b),
      QUEUE_PREFIX: `test-${randomUUID()}`,
      LOG_LEVEL: 'info',
    })
    onCleanup(async () => {
      if (spawned.child.exitCode === null) spawned.child.kill('SIGKILL')
    })
    const [code] = (await once(spawned.child, 'exit')) as [number | null]
    expect(code).toBe(1)
    expect(spawned.output()).toContain(
      `serves another LINE channel: it records LINE bot ${a.botUserId}`,
    )
    expect(spawned.output()).not.toContain('Kizuna started')
  }, 60_000)
})

/** Runs the migrator's `down`s on `database`, as `kizuna migrate down` does. */
async function migrateDown(database: Database, to?: string) {
  const db = plainKysely(database.url)
  try {
    const migrator = createMigrator(db)
    const { error } = to ? await migrator.migrateTo(to) : await migrator.migrateDown()
    expect(error).toBeUndefined()
  } finally {
    await db.destroy()
  }
}

describe('one database, one LINE channel: a checkout with migrations the database lacks', () => {
  it("refuses another channel's credentials before migrating: the migrations stay as they were", async () => {
    const { database, rows } = await databaseOfChannelA()
    // The database lacks the newest migration of this checkout (as production's, started from a
    // newer checkout): rolled back.
    await migrateDown(database)
    const migrations = () =>
      query<{ name: string }>(database, 'select name from kysely_migration order by name')
    const before = await migrations()
    const b = await channel('channel-b')

    const refused = await start(database, b).catch((error: Error) => error)
    expect(refused).toBeInstanceOf(Error)
    expect((refused as Error).message).toContain(
      `are LINE bot ${b.botUserId}'s. Kizuna will not start. Nothing was sent to LINE or ` +
        'changed in the database.',
    )
    expect(await migrations()).toEqual(before)
    expect(await channelRows(database)).toEqual(rows)
    expect(calls(b)).toEqual(['GET /v2/bot/info'])
  })
})

describe('one database, one LINE channel: the first start after the upgrade', () => {
  it("refuses to record the sandbox on a database holding a real channel's LINE users", async () => {
    const { database, a } = await databaseOfChannelA()
    // As before the upgrade: no line_channel table, LINE friends in line_user.
    await migrateDown(database, '20261226T120000-create-order-source')

    const refused = await start(database, null).catch((error: Error) => error)
    expect(refused).toBeInstanceOf(Error)
    const { message } = refused as Error
    expect(message).toMatch(
      /^The database at DATABASE_URL \(postgres:[^)]*\) holds LINE users but records no LINE channel yet .*: they may be the friends of a real LINE channel, so the built-in LINE sandbox \(no LINE_CHANNEL_SECRET and LINE_CHANNEL_ACCESS_TOKEN set\) is not recorded as its channel\. Kizuna will not start\. Nothing was sent to LINE\./,
    )
    expect(message).toMatch(/\d+ database migrations? of this checkout w(as|ere) applied first/)
    expect(message).toContain('Set the LINE credentials of the channel this database serves')
    expect(message).toContain('`npx kizuna line-channel adopt`')
    expect(await channelRows(database)).toEqual([])

    // Its channel's credentials are recorded, as on any first start.
    await start(database, a, { start: { deployRichMenus: false } })
    expect((await channelRows(database)).map((r) => r.bot_user_id)).toEqual([a.botUserId])
  })
})

describe('one database, one LINE channel: the sandbox', () => {
  it('is one channel from one start to the next, though its secret is new each time', async () => {
    const database = await privateDatabase()
    const first = await start(database, null, { start: { deployRichMenus: false } })
    expect(first.k.sandbox?.botUserId).toBe(SANDBOX_BOT_USER_ID)
    await stopKizuna(first.k)
    const second = await start(database, null, { start: { deployRichMenus: false } })
    expect(second.k.sandbox?.channelSecret).not.toBe(first.k.sandbox?.channelSecret)
    expect((await channelRows(database)).map((r) => r.bot_user_id)).toEqual([SANDBOX_BOT_USER_ID])
  })

  it("is refused on another channel's database, as the sandbox", async () => {
    const { database, a, rows } = await databaseOfChannelA()
    const refused = await start(database, null).catch((error: Error) => error)
    expect(refused).toBeInstanceOf(Error)
    const { message } = refused as Error
    expect(message).toContain(`records LINE bot ${a.botUserId} (since`)
    expect(message).toContain(
      'but the built-in LINE sandbox (no LINE_CHANNEL_SECRET and LINE_CHANNEL_ACCESS_TOKEN ' +
        `set) is the built-in LINE sandbox's bot ${SANDBOX_BOT_USER_ID}. Kizuna will not start.`,
    )
    expect(message).toContain('or give the sandbox a database of its own')
    expect(await channelRows(database)).toEqual(rows)
  })
})

describe('one database, one LINE channel: LINE not answering at start', () => {
  it('starts with a warning, holds every LINE call, then stops for another channel', async () => {
    const { database, a, rows, deliveryId } = await databaseOfChannelA()
    const b = await channel('channel-b')
    b.failNext({ method: 'GET', path: '/v2/bot/info', status: 500, count: Infinity })

    const { k, logs } = await start(database, b, {
      start: { deployRichMenus: true, lineChannelRecheckMs: 300 },
    })
    const warnings = () =>
      logs
        .entries()
        .filter((l) => l.level === 40)
        .map((l) => String(l.msg))
    expect(warnings()[0]).toMatch(
      /^could not check which LINE channel this is \(LINE answered 500 .*\): starting all the same\. No call goes to LINE until it is checked/,
    )
    // The delivery (and the rich-menu deploy queued at start) wait for the check, unsent.
    await enqueueDeliveries(k.deps.queues, [{ id: deliveryId }])
    await eventually(async () => {
      const row = await k.deps.db
        .selectFrom('delivery')
        .select(['status', 'last_error'])
        .where('id', '=', deliveryId)
        .executeTakeFirstOrThrow()
      expect(row).toEqual({
        status: 'pending',
        last_error: expect.stringMatching(/LINE channel is not checked yet \(LINE answered 500/),
      })
    })
    await eventually(() =>
      expect(warnings()).toContainEqual(
        expect.stringMatching(/^the LINE channel still could not be checked \(LINE answered 500/),
      ),
    )

    // LINE answers: another channel than the database's. Kizuna stops, as at start.
    b.clearFailures()
    const error = await k.halted
    expect(error.message).toMatch(
      new RegExp(
        `serves another LINE channel: it records LINE bot ${a.botUserId} .* are LINE bot ` +
          `${b.botUserId}'s\\. Kizuna stops: its workers first, then the process\\. No call ` +
          'went to LINE while the channel was unchecked\\.',
      ),
    )
    expect(k.stopWaitsFor()).toBe('nothing: stopped')
    expect(new Set(calls(b))).toEqual(new Set(['GET /v2/bot/info']))
    expect(await channelRows(database)).toEqual(rows)
    expect(await deliveryStatus(database, deliveryId)).toBe('pending')
  })

  it('lets LINE calls go once the check finds the channel the database serves', async () => {
    const { database, a, deliveryId } = await databaseOfChannelA()
    a.clearRequests()
    a.failNext({ method: 'GET', path: '/v2/bot/info', status: 503, count: 1 })
    const { k, logs } = await start(database, a, {
      start: { deployRichMenus: false, lineChannelRecheckMs: 60_000 },
    })
    expect(logs.entries().some((l) => l.level === 40)).toBe(true)
    // The send has the channel checked first (no minute's wait): the same one, so it goes.
    await enqueueDeliveries(k.deps.queues, [{ id: deliveryId }])
    await eventually(async () => expect(await deliveryStatus(database, deliveryId)).toBe('sent'))
    expect(calls(a).filter((c) => c.endsWith('/v2/bot/info'))).toHaveLength(2)
    expect(logs.entries().map((l) => l.msg)).toContain(
      'LINE channel checked: the one this database serves; LINE calls go ahead',
    )
  })
})
