import { sql } from 'kysely'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import type { Env } from '../../src/config/env.ts'
import { eraseCustomer } from '../../src/customers/erase.service.ts'
import { createMailer } from '../../src/email/mailer.ts'
import { createProcessors } from '../../src/main/processors.ts'
import { sweepOnce } from '../../src/maintenance/sweep.jobs.ts'
import type { Deps } from '../../src/platform/deps.ts'
import { createWorkerRedis } from '../../src/platform/redis.ts'
import { startWorkers } from '../../src/platform/workers.ts'
import { unlinkAtLine } from '../../src/richmenu/richmenu-unlink.ts'
import type { LinePlatform } from '../../src/sandbox/platform.ts'
import { insertFriend, type LiveMenu } from '../richmenu/richmenu-link-fixtures.ts'
import { cli } from '../support/cli.ts'
import { findAnywhere } from '../support/find-anywhere.ts'
import { eventually } from '../support/wait.ts'
import { commandEnv, standInFriend, startWithLiveMenu } from './erase-richmenu-fixtures.ts'

// A database of its own: the sweeper takes every pending unlink it sees.
const cleanups: (() => Promise<void>)[] = []
let deps: Deps
let env: Env
let line: LinePlatform
let menu: LiveMenu

beforeAll(async () => {
  ;({ deps, env, line, menu } = await startWithLiveMenu(cleanups))
  // The workers of the richmenu queue, which take the sweeper's unlink jobs.
  const redis = createWorkerRedis(env.REDIS_URL)
  cleanups.push(async () => redis.disconnect())
  const mailer = createMailer(env, deps.db, { sandbox: false })
  const workers = startWorkers(deps, createProcessors(deps, { mailer }), redis, {
    queues: ['richmenu'],
  })
  cleanups.push(() => workers.close())
})
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup()
})
beforeEach(() => {
  line.clearFailures()
  line.clearRequests()
})

const lineEnv = () => ({ ...commandEnv(env, line), LOG_LEVEL: 'warn' })
const friend = (opts: { linked: boolean; customerId?: string }) =>
  standInFriend({ deps, line, menu }, opts)
const linkedFriend = () => friend({ linked: true })

/** Where the LINE user id is still stored (with and without its leading U). */
const leftOf = (lineUid: string) => findAnywhere(deps.db, [lineUid, lineUid.slice(1)])

/** The time of the retries waiting comes (as minutes passing would). */
const untilDue = () =>
  sql`update erased_menu_unlink set not_before = now() - interval '1 second'
    where not_before is not null`.execute(deps.db)

/** A sweep `minutes` into the next hour: a minute apart, sweeps of one hour. */
const sweepAt = (minutes: number) => {
  const hour = Math.floor(Date.now() / 3_600_000) + 1
  const at = new Date((hour * 60 + minutes) * 60_000)
  return sweepOnce({ ...deps, clock: { now: () => at } }, 0)
}

const unlinkCalls = (lineUid: string) =>
  line.requests.filter(
    (r) => r.path === `/v2/bot/user/${lineUid}/richmenu` && r.method === 'DELETE',
  )

describe('the unlink of an erased person’s menu, when it cannot happen right after the erasure', () => {
  it('leaves nothing of the person once LINE confirmed the unlink right away', async () => {
    const f = await linkedFriend()
    const res = await cli(['customers', 'erase', f.customerId], lineEnv())
    expect(res.code).toBe(0)
    expect(line.richMenuOf(f.lineUid)).toBeUndefined()
    expect(await leftOf(f.lineUid)).toEqual([])
  })

  it('unlinks later a menu LINE failed to unlink after the commit, backing off, then forgets the id', async () => {
    const f = await linkedFriend()
    // The command's unlink, and the first retry, fail.
    line.failNext({ method: 'DELETE', path: /\/richmenu$/, status: 500, count: 2 })
    const res = await cli(['customers', 'erase', f.customerId], lineEnv())
    expect(res.code).toBe(0)
    expect(res.stderr).toContain('could not be unlinked at LINE for 1 LINE user(s) (500)')
    expect(res.stderr).toContain('tries again until LINE confirms')
    expect(`${res.stdout}${res.stderr}`).not.toContain(f.lineUid.slice(1))
    expect(line.richMenuOf(f.lineUid)).toBe(menu.richMenuId)

    // Backing off: not due again at once.
    expect(await sweepOnce(deps, 0)).toMatchObject({ unlinks: 0 })
    await untilDue()
    expect(await sweepOnce(deps, 0)).toMatchObject({ unlinks: 1 })
    await eventually(() => expect(unlinkCalls(f.lineUid)).toHaveLength(2))
    expect(line.richMenuOf(f.lineUid)).toBe(menu.richMenuId)
    await eventually(async () => expect(await sweepOnce(deps, 0)).toMatchObject({ unlinks: 0 }))
    await untilDue()
    expect(await sweepOnce(deps, 0)).toMatchObject({ unlinks: 1 })
    await eventually(() => expect(line.richMenuOf(f.lineUid)).toBeUndefined())
    await eventually(async () => expect(await leftOf(f.lineUid)).toEqual([]))
    expect(unlinkCalls(f.lineUid)).toHaveLength(3)
  })

  it('unlinks later when the process died between the commit and the unlink', async () => {
    const f = await linkedFriend()
    // The erasure's transaction alone: what a command killed right after its commit did.
    await eraseCustomer(deps.db, f.customerId)
    expect(line.richMenuOf(f.lineUid)).toBe(menu.richMenuId)
    expect(unlinkCalls(f.lineUid)).toEqual([])

    expect(await sweepOnce(deps, 0)).toMatchObject({ unlinks: 1 })
    await eventually(() => expect(line.richMenuOf(f.lineUid)).toBeUndefined())
    await eventually(async () => expect(await leftOf(f.lineUid)).toEqual([]))
    expect(unlinkCalls(f.lineUid)).toHaveLength(1)
  })

  it('unlinks the erased person’s menu from a friend who followed again with the same LINE user id, then links theirs', async () => {
    const f = await linkedFriend()
    await eraseCustomer(deps.db, f.customerId)
    // Back as a friend before the unlink got through; their own link not recorded yet.
    const again = await insertFriend(deps, { lineUid: f.lineUid })
    expect(await sweepOnce(deps, 0)).toMatchObject({ unlinks: 1 })
    await eventually(async () =>
      expect(await leftOf(f.lineUid)).toEqual([`line_user.line_uid: ${f.lineUid}`]),
    )
    expect(unlinkCalls(f.lineUid)).toHaveLength(1)
    // Their own menu (the same segment's here), linked after the unlink.
    await eventually(async () => {
      const row = await deps.db
        .selectFrom('line_user')
        .select('richmenu_version_id')
        .where('id', '=', again.lineUserId)
        .executeTakeFirstOrThrow()
      expect(row.richmenu_version_id).toBe(menu.versionId)
    })
    expect(line.richMenuOf(f.lineUid)).toBe(menu.richMenuId)
    await deps.db.deleteFrom('line_user').where('id', '=', again.lineUserId).execute()
  })

  it('unlinks the erased person’s menu from a friend who followed again and wants the default menu', async () => {
    const f = await linkedFriend()
    await eraseCustomer(deps.db, f.customerId)
    // No segment that fits them has a live menu now (the new-friend menu, which fits everyone, is
    // retired for this test): the default applies, and their link job finds nothing to change
    // (no menu recorded, none wanted) and never calls LINE.
    const retire = (at: Date | null) =>
      deps.db
        .updateTable('richmenu_version')
        .set({ retired_at: at })
        .where('id', '=', menu.versionId)
        .execute()
    await retire(new Date())
    try {
      const again = await insertFriend(deps, { lineUid: f.lineUid })
      expect(await sweepOnce(deps, 0)).toMatchObject({ unlinks: 1 })
      await eventually(async () =>
        expect(await leftOf(f.lineUid)).toEqual([`line_user.line_uid: ${f.lineUid}`]),
      )
      expect(line.richMenuOf(f.lineUid)).toBeUndefined()
      await deps.db.deleteFrom('line_user').where('id', '=', again.lineUserId).execute()
    } finally {
      await retire(null)
    }
  })

  it('says so when another attempt holds the unlink the erasure recorded, which the sweeper sees through', async () => {
    const f = await linkedFriend()
    // Another attempt takes the row as soon as it is written (what the command finds when one
    // came first: a link that landed after the erasure, unlinking its own).
    await sql`create function take_erased_unlink() returns trigger language plpgsql as $$
      begin
        update erased_menu_unlink set not_before = now() + interval '5 minutes' where id = new.id;
        return null;
      end $$`.execute(deps.db)
    await sql`create trigger take_erased_unlink after insert on erased_menu_unlink
      for each row execute function take_erased_unlink()`.execute(deps.db)
    const res = await cli(['customers', 'erase', f.customerId], lineEnv()).finally(() =>
      sql`drop function take_erased_unlink() cascade`.execute(deps.db),
    )
    expect(res.code).toBe(0)
    expect(res.stderr).toContain(
      'note: the rich menu of 1 LINE user(s) is being unlinked at LINE by another attempt',
    )
    expect(`${res.stdout}${res.stderr}`).not.toContain(f.lineUid.slice(1))
    expect(unlinkCalls(f.lineUid)).toEqual([])

    // That attempt died: its lease runs out, and the sweeper unlinks.
    await untilDue()
    expect(await sweepOnce(deps, 0)).toMatchObject({ unlinks: 1 })
    await eventually(() => expect(line.richMenuOf(f.lineUid)).toBeUndefined())
    await eventually(async () => expect(await leftOf(f.lineUid)).toEqual([]))
  })

  it('gives up after 30 days without LINE, forgetting the LINE user id', async () => {
    const f = await linkedFriend()
    await eraseCustomer(deps.db, f.customerId)
    await sql`update erased_menu_unlink set created_at = now() - interval '31 days'`.execute(
      deps.db,
    )
    expect(await sweepOnce(deps, 0)).toMatchObject({ unlinks: 0 })
    expect(await leftOf(f.lineUid)).toEqual([])
    expect(unlinkCalls(f.lineUid)).toEqual([])
  })

  it('queues the unlink once while its job waits, and again once that job took it', async () => {
    const f = await linkedFriend()
    await eraseCustomer(deps.db, f.customerId)
    const { id } = await deps.db
      .selectFrom('erased_menu_unlink')
      .select('id')
      .where('line_uid', '=', f.lineUid)
      .executeTakeFirstOrThrow()
    const richmenu = deps.queues.byName.richmenu
    /** The sweeper's jobs for this row, whatever their state. */
    const jobsOfRow = async () => {
      const jobs = await richmenu.getJobs(['wait', 'active', 'completed', 'failed'])
      return jobs.filter(
        (j) => j.name === 'richmenu.unlink-erased' && j.data.unlinkIds.includes(id),
      )
    }

    // Two sweeps of the hour a minute apart while the first one's job waits (a backlog).
    await richmenu.pause()
    try {
      expect(await sweepAt(1)).toMatchObject({ unlinks: 1 })
      expect(await sweepAt(2)).toMatchObject({ unlinks: 1 })
      expect(await jobsOfRow()).toHaveLength(1)
      // The job runs; LINE fails the unlink, which waits for its retry.
      line.failNext({ method: 'DELETE', path: /\/richmenu$/, status: 500 })
    } finally {
      await richmenu.resume()
    }
    await eventually(() => expect(unlinkCalls(f.lineUid)).toHaveLength(1))
    await eventually(async () => {
      const states = await Promise.all((await jobsOfRow()).map((j) => j.getState()))
      expect(states).toEqual(['completed'])
    })
    expect(line.richMenuOf(f.lineUid)).toBe(menu.richMenuId)

    // Its retry is due: the next sweep of the hour queues it again, and LINE unlinks.
    await untilDue()
    expect(await sweepAt(3)).toMatchObject({ unlinks: 1 })
    await eventually(() => expect(line.richMenuOf(f.lineUid)).toBeUndefined())
    expect(await jobsOfRow()).toHaveLength(2)
    await eventually(async () => expect(await leftOf(f.lineUid)).toEqual([]))
  })
})

const unlinkRequests = () =>
  line.requests.filter((r) => r.path.endsWith('/richmenu') || r.path.includes('/bulk/unlink'))

describe('the unlink of an erased person’s menu, when LINE refuses a bulk unlink', () => {
  it('unlinks the others one by one when LINE refuses the bulk unlink (a malformed LINE user id)', async () => {
    const a = await friend({ linked: true })
    const b = await friend({ linked: true, customerId: a.customerId })
    // LINE refuses a bulk call naming a malformed id as a whole (400), unlinking no one.
    const bad = await insertFriend(deps, { lineUid: 'U-malformed', customerId: a.customerId })
    line.clearRequests()

    const res = await cli(['customers', 'erase', a.customerId], { ...lineEnv(), LOG_LEVEL: 'warn' })
    expect(res.code).toBe(0)
    expect(res.stdout).toContain(`erased customer ${a.customerId}`)
    expect(line.requestsTo('POST', '/v2/bot/richmenu/bulk/unlink').map((r) => r.status)).toEqual([
      400,
    ])
    expect(line.richMenuOf(a.lineUid)).toBeUndefined()
    expect(line.richMenuOf(b.lineUid)).toBeUndefined()
    expect(res.stdout).toContain('rich menu unlinked at LINE for 2 LINE user(s)')
    expect(res.stderr).toContain('LINE refused 1 LINE user id(s) as invalid (400)')
    expect(`${res.stdout}${res.stderr}`).not.toContain(bad.lineUid)
  })

  it('stops unlinking one by one when LINE refuses a call for another reason than the ids (403)', async () => {
    const users = [line.users.create(), line.users.create(), line.users.create()]
    line.failNext({ method: 'POST', path: '/v2/bot/richmenu/bulk/unlink', status: 403 })
    line.failNext({ method: 'DELETE', path: /\/richmenu$/, status: 403, count: Infinity })
    const menus = await unlinkAtLine(
      deps,
      users.map((u) => u.userId),
      'could not unlink',
    )
    expect(menus).toMatchObject({ unlinked: 0, failed: 3, failure: '403' })
    // The bulk call, then one of them alone: the refusal was not about an id.
    expect(unlinkRequests()).toHaveLength(2)
  })
})
