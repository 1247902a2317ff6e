import { randomUUID } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { loadEnv } from '../../src/config/env.ts'
import { setConsent } from '../../src/consent/consent.service.ts'
import { type Kizuna, startKizuna } from '../../src/main/runtime.ts'
import { scheduleDeliveries } from '../../src/messaging/delivery.service.ts'
import { createLogger } from '../../src/platform/logger.ts'
import { cli } from '../support/cli.ts'
import { TEST_REDIS_URL } from '../support/env.ts'
import { eventually } from '../support/wait.ts'

const CAMPAIGN = JSON.parse(
  readFileSync(
    new URL('../../flex-templates/campaign-sample.sample.json', import.meta.url),
    'utf8',
  ),
) as Record<string, string>

const cleanups: (() => Promise<void>)[] = []
afterAll(async () => {
  for (const fn of cleanups.reverse()) await fn()
})

describe('first run: embedded PGlite and the built-in LINE sandbox', () => {
  it('starts with no credentials, migrates, and welcomes a simulated friend end to end', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'kizuna-smoke-'))
    cleanups.push(() => rm(dataDir, { recursive: true, force: true }))
    const env = loadEnv({
      PORT: '0',
      DATA_DIR: dataDir,
      REDIS_URL: TEST_REDIS_URL,
      LOG_LEVEL: 'silent',
      QUIET_HOURS: '', // the campaign below is marketing: not held for the night
    })
    const prefix = `test-${randomUUID()}`
    let k: Kizuna | undefined = await startKizuna(env, {
      queuePrefix: prefix,
      log: createLogger('silent'),
    })
    cleanups.push(async () => {
      await k?.stop()
    })
    expect(k.sandbox).not.toBeNull()
    const sandbox = k.sandbox!

    const ready = await fetch(`${k.baseUrl}/readyz`)
    expect(await ready.json()).toEqual({ status: 'ready', postgres: 'ok', redis: 'ok' })

    const user = sandbox.users.create({ displayName: 'Smoke Tester' })
    expect((await sandbox.users.follow(user.userId))?.status).toBe(200)
    await eventually(() => expect(sandbox.inbox(user.userId)).toHaveLength(1))
    await eventually(async () => {
      const row = await k!.deps.db
        .selectFrom('line_user')
        .select(['status', 'display_name'])
        .where('line_uid', '=', user.userId)
        .executeTakeFirst()
      expect(row).toEqual({ status: 'friend', display_name: 'Smoke Tester' })
    })

    // The shipped richmenus/ went to the sandbox at start; the new friend got the new_friend one.
    const linked = await eventually(async () => {
      const row = await k!.deps.db
        .selectFrom('line_user')
        .innerJoin('richmenu_version as v', 'v.id', 'line_user.richmenu_version_id')
        .select(['v.name', 'v.line_rich_menu_id'])
        .where('line_uid', '=', user.userId)
        .executeTakeFirst()
      expect(row?.name).toBe('new-friend')
      return row
    })
    expect(sandbox.context.state.users.get(user.userId)?.richMenuId).toBe(linked?.line_rich_menu_id)
    expect(sandbox.context.state.richMenus.get(linked?.line_rich_menu_id ?? '')?.image).toBeTruthy()

    const page = await fetch(`${k.baseUrl}/sandbox`)
    expect(page.status).toBe(200)
    const html = await page.text()
    expect(html).toContain('Smoke Tester')
    expect(html).toContain(`data-richmenu="${linked?.line_rich_menu_id}"`)
    expect(html).toContain('友だち追加ありがとうございます')

    // Without SMTP_URL a sandbox run keeps its email in the sandbox mailbox, HTML and headers too.
    const shopper = await k.deps.db
      .insertInto('customer')
      .values({ display_name: 'Mail Tester', email: 'mail.tester@example.com' })
      .returning('id')
      .executeTakeFirstOrThrow()
    await setConsent(k.deps.db, shopper.id, {
      category: 'marketing',
      channel: 'email',
      granted: true,
      source: 'admin',
    })
    await scheduleDeliveries(k.deps, [
      {
        dedupeKey: `smoke:${shopper.id}`,
        kind: 'campaign',
        category: 'marketing',
        customerId: shopper.id,
        content: {
          templateId: 'campaign-sample',
          vars: { ...CAMPAIGN, displayName: 'Mail Tester' },
        },
      },
    ])
    const mailbox = await eventually(async () => {
      const res = await fetch(`${k!.baseUrl}/sandbox/mail`)
      const text = await res.text()
      expect(text).toContain('mail.tester@example.com')
      return text
    })
    expect(mailbox).toContain('List-Unsubscribe: &lt;')
    expect(mailbox).toMatch(/<iframe[^>]*sandbox[^>]*srcdoc="[^"]*Mail Tester/)

    // Appended rows take time-ordered ids on the embedded engine too (uuid_v7() in SQL).
    const deliveries = await k.deps.db
      .selectFrom('delivery')
      .select(['id', 'created_at'])
      .orderBy('created_at')
      .execute()
    expect(deliveries.length).toBeGreaterThanOrEqual(2)
    for (const d of deliveries) expect(d.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab]/)
    expect(deliveries.map((d) => d.id)).toEqual(deliveries.map((d) => d.id).sort())

    // The embedded database keeps its data across a restart.
    await k.stop()
    k = await startKizuna(env, { queuePrefix: prefix, log: createLogger('silent') })
    const count = await k.deps.db
      .selectFrom('line_user')
      .select((eb) => eb.fn.countAll<string>().as('n'))
      .executeTakeFirstOrThrow()
    expect(count.n).toBe('1')

    // A `kizuna` command beside the running process is refused, not let in to corrupt the
    // folder; once Kizuna has stopped it runs.
    const cliEnv = { DATABASE_URL: '', DATA_DIR: dataDir, LOG_LEVEL: 'silent' }
    const beside = await cli(['stores', 'add', '--code', 'S777', '--name', 'Beside'], cliEnv)
    expect(beside.code).not.toBe(0)
    expect(beside.stderr).toContain(`is in use by process ${process.pid}`)
    await k.stop()
    k = undefined
    const after = await cli(['stores', 'add', '--code', 'S777', '--name', 'After'], cliEnv)
    expect(after).toMatchObject({ code: 0 })
    expect((await cli(['stores', 'list'], cliEnv)).stdout).toContain('S777')
  }, 60_000)
})
