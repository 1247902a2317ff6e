import { sql } from 'kysely'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import type { Env } from '../../src/config/env.ts'
import type { Deps } from '../../src/platform/deps.ts'
import { insertErasedUnlinks } from '../../src/richmenu/erased-unlink.repo.ts'
import { unlinkErasedMenus } from '../../src/richmenu/erased-unlink.service.ts'
import {
  forgetRichMenuOf,
  linkRichMenus,
  relinkCustomersSoon,
} from '../../src/richmenu/richmenu-link.service.ts'
import { relinkRichMenus } from '../../src/richmenu/richmenu-relink.service.ts'
import type { LinePlatform } from '../../src/sandbox/platform.ts'
import { insertFriend, type LiveMenu } from '../richmenu/richmenu-link-fixtures.ts'
import { cli } from '../support/cli.ts'
import { eventually } from '../support/wait.ts'
import { commandEnv, standInFriend, startWithLiveMenu } from './erase-richmenu-fixtures.ts'

// A database of its own: the relink after the erasure looks at every LINE user.
const cleanups: (() => Promise<void>)[] = []
let deps: Deps
let env: Env
let line: LinePlatform
let menu: LiveMenu

beforeAll(async () => {
  ;({ deps, env, line, menu } = await startWithLiveMenu(cleanups))
})
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup()
})
beforeEach(() => {
  line.clearFailures()
  line.clearRequests()
})

const lineEnv = () => commandEnv(env, line)
const friend = (opts: { linked: boolean; customerId?: string }) =>
  standInFriend({ deps, line, menu }, opts)

const row = (lineUserId: string) =>
  deps.db
    .selectFrom('line_user')
    .select(['line_uid', 'richmenu_version_id', 'status'])
    .where('id', '=', lineUserId)
    .executeTakeFirstOrThrow()

const unlinkRequests = () =>
  line.requests.filter((r) => r.path.endsWith('/richmenu') || r.path.includes('/bulk/unlink'))

/** Nothing links a menu to these LINE users again: not a link, a relink, nor a purchase. */
async function expectNeverLinkedAgain(
  customerId: string,
  lineUids: string[],
  lineUserIds: string[],
) {
  line.clearRequests()
  await linkRichMenus(deps, lineUserIds)
  await relinkRichMenus(deps)
  await relinkCustomersSoon(deps, [customerId], 'erase-test')
  // No worker runs here: what the purchase's relink would do is the job it queued, if any.
  const queued = await deps.queues.byName.richmenu.getJobs(['waiting', 'prioritized', 'delayed'])
  const linkingThem = queued.filter((job) =>
    lineUserIds.some((id) => JSON.stringify(job.data).includes(id)),
  )
  expect(linkingThem).toEqual([])
  const touching = line.requests.filter((r) =>
    lineUids.some((uid) => r.path.includes(uid) || JSON.stringify(r.body ?? '').includes(uid)),
  )
  expect(touching).toEqual([])
  for (const uid of lineUids) expect(line.richMenuOf(uid)).toBeUndefined()
}

/** The link jobs queued (none runs here) naming this LINE user. */
async function queuedLinksOf(lineUserId: string) {
  const jobs = await deps.queues.byName.richmenu.getJobs(['waiting', 'prioritized', 'delayed'])
  return jobs.filter(
    (j) => j.name === 'richmenu.link-users' && j.data.lineUserIds?.includes(lineUserId),
  )
}

/**
 * A link job for these friends whose call LINE holds while `meanwhile` runs; the requests LINE
 * received until then are cleared, and the job is done when this returns.
 */
async function linkHeldWhile(
  friends: { lineUserId: string; lineUid: string }[],
  meanwhile: () => Promise<void>,
) {
  const [one] = friends
  const path =
    friends.length === 1 && one
      ? `/v2/bot/user/${one.lineUid}/richmenu/${menu.richMenuId}`
      : '/v2/bot/richmenu/bulk/link'
  const held = line.holdNext({ method: 'POST', path })
  const job = linkRichMenus(
    deps,
    friends.map((f) => f.lineUserId),
  )
  await held.arrived
  await meanwhile()
  line.clearRequests()
  held.release()
  await job
}

/** Holds `customerId`'s row lock in a transaction of its own until `release`. */
async function holdRowLock(customerId: string) {
  const locked = Promise.withResolvers<void>()
  const done = Promise.withResolvers<void>()
  const trx = deps.db.transaction().execute(async (t) => {
    await t.selectFrom('customer').select('id').where('id', '=', customerId).forUpdate().execute()
    locked.resolve()
    await done.promise
  })
  await locked.promise
  return {
    release: async () => {
      done.resolve()
      await trx
    },
  }
}

/** Until a session of this database waits for a lock (the erasure, blocked by holdRowLock). */
async function waitForLockWait() {
  await eventually(async () => {
    const { rows } = await sql<{ n: number }>`
      select count(*)::int as n from pg_stat_activity
      where datname = current_database() and wait_event_type = 'Lock'`.execute(deps.db)
    expect(rows[0]?.n).toBeGreaterThan(0)
  })
}

describe('kizuna customers erase and the rich menu', () => {
  it('unlinks the menu at LINE first, then tombstones the row with no menu recorded', async () => {
    const f = await friend({ linked: true })
    const res = await cli(['customers', 'erase', f.customerId], lineEnv())
    expect(res.stderr).toBe('')
    expect(res.code).toBe(0)
    expect(res.stdout).toContain(`erased customer ${f.customerId}`)
    expect(res.stdout).not.toContain(f.lineUid)

    expect(line.requestsTo('DELETE', `/v2/bot/user/${f.lineUid}/richmenu`)).toHaveLength(1)
    expect(line.richMenuOf(f.lineUid)).toBeUndefined()
    const after = await row(f.lineUserId)
    expect(after.line_uid).toMatch(/^erased:/)
    expect(after.richmenu_version_id).toBeNull()
    await expectNeverLinkedAgain(f.customerId, [f.lineUid], [f.lineUserId])
  })

  it('is not undone by a link call under way: its answer is not recorded on the erased row', async () => {
    const f = await friend({ linked: false })
    // A link job read the row (no menu recorded) and asked LINE; the answer comes after the
    // erasure, which found nothing recorded to compare against but the generation.
    await linkHeldWhile([f], async () => {
      expect((await cli(['customers', 'erase', f.customerId], lineEnv())).code).toBe(0)
    })

    const after = await row(f.lineUserId)
    expect(after.line_uid).toMatch(/^erased:/)
    expect(after.richmenu_version_id).toBeNull()
    // The link landed after the erasure's unlink: the job takes it back at LINE.
    expect(line.requestsTo('DELETE', `/v2/bot/user/${f.lineUid}/richmenu`)).toHaveLength(1)
    expect(line.richMenuOf(f.lineUid)).toBeUndefined()
  })

  it('takes back a link recorded while the erasure waited for its lock, after it commits', async () => {
    const f = await friend({ linked: false })
    // The erasure starts (and would have unlinked at LINE) but waits for the customer's lock;
    // meanwhile the link job's call lands at LINE and is recorded under the generation it read.
    const lock = await holdRowLock(f.customerId)
    let erasure: ReturnType<typeof cli> | undefined
    await linkHeldWhile([f], async () => {
      erasure = cli(['customers', 'erase', f.customerId], lineEnv())
      await waitForLockWait()
    })
    expect((await row(f.lineUserId)).richmenu_version_id).toBe(menu.versionId)
    await lock.release()
    const res = await erasure
    expect(res?.stderr).toBe('')
    expect(res?.code).toBe(0)

    const after = await row(f.lineUserId)
    expect(after.line_uid).toMatch(/^erased:/)
    expect(after.richmenu_version_id).toBeNull()
    expect(line.richMenuOf(f.lineUid)).toBeUndefined()
  })

  it("takes back a late link from a returning friend holding the erased person's LINE user id, then links theirs", async () => {
    const f = await friend({ linked: false })
    let again: Awaited<ReturnType<typeof insertFriend>> | undefined
    // A stale link job read the row; the person is erased, follows again (a new row with the
    // same LINE user id), and is linked; then the stale call lands, last.
    await linkHeldWhile([f], async () => {
      expect((await cli(['customers', 'erase', f.customerId], lineEnv())).code).toBe(0)
      again = await insertFriend(deps, { lineUid: f.lineUid })
      expect(await linkRichMenus(deps, [again.lineUserId])).toMatchObject({ linked: 1 })
    })
    const againId = again?.lineUserId ?? ''

    // The erased person's link is taken back; the friend's record forgotten, their link queued.
    expect(line.requestsTo('DELETE', `/v2/bot/user/${f.lineUid}/richmenu`)).toHaveLength(1)
    expect(line.richMenuOf(f.lineUid)).toBeUndefined()
    expect((await row(againId)).richmenu_version_id).toBeNull()
    expect(await queuedLinksOf(againId)).toHaveLength(1)
    // What that job does: the friend's own menu again.
    expect(await linkRichMenus(deps, [againId])).toMatchObject({ linked: 1 })
    expect(line.richMenuOf(f.lineUid)).toBe(menu.richMenuId)
  })

  it('after the commit, unlinks every LINE user id, a friend who followed again too, whose menu is linked again', async () => {
    const returning = await friend({ linked: true })
    const gone = line.users.create()
    gone.friendship = 'friend'
    line.clearRequests()
    const unlinks = await insertErasedUnlinks(deps.db, [returning.lineUid, gone.userId])
    const menus = await unlinkErasedMenus(deps, unlinks)
    expect(menus).toEqual({ unlinked: 2, refused: 0, failed: 0, pending: 0 })
    expect(line.requestsTo('POST', '/v2/bot/richmenu/bulk/unlink')).toHaveLength(1)
    expect(line.richMenuOf(returning.lineUid)).toBeUndefined()
    expect((await row(returning.lineUserId)).richmenu_version_id).toBeNull()
    expect(await queuedLinksOf(returning.lineUserId)).toHaveLength(1)
  })

  it('takes back a bulk link that landed after the erasure, in one bulk unlink', async () => {
    const a = await friend({ linked: false })
    const b = await friend({ linked: false, customerId: a.customerId })
    await linkHeldWhile([a, b], async () => {
      expect((await cli(['customers', 'erase', a.customerId], lineEnv())).code).toBe(0)
    })

    const bulk = line.requestsTo('POST', '/v2/bot/richmenu/bulk/unlink')
    expect((bulk[0]?.body as { userIds: string[] } | undefined)?.userIds.sort()).toEqual(
      [a.lineUid, b.lineUid].sort(),
    )
    expect(unlinkRequests()).toHaveLength(1)
    expect(line.richMenuOf(a.lineUid)).toBeUndefined()
    expect(line.richMenuOf(b.lineUid)).toBeUndefined()
  })

  it('does not unlink when the record moved for another reason than an erasure (a follow)', async () => {
    const f = await friend({ linked: false })
    // What a follow does meanwhile: the record forgotten, the generation counted up.
    await linkHeldWhile([f], () => forgetRichMenuOf(deps.db, f.lineUserId))

    expect(unlinkRequests()).toEqual([])
    expect(line.richMenuOf(f.lineUid)).toBe(menu.richMenuId)
    expect((await row(f.lineUserId)).richmenu_version_id).toBe(menu.versionId)
  })

  it('unlinks every LINE user of the survivor of a merge, in one bulk call', async () => {
    const a = await friend({ linked: true })
    const b = await friend({ linked: true, customerId: a.customerId })
    const none = await friend({ linked: false, customerId: a.customerId })
    // The id of a customer merged into a's.
    const merged = await deps.db
      .insertInto('customer')
      .values({ merged_into_id: a.customerId })
      .returning('id')
      .executeTakeFirstOrThrow()
    line.clearRequests()

    const res = await cli(['customers', 'erase', merged.id], lineEnv())
    expect(res.code).toBe(0)
    expect(res.stdout).toContain(`erased customer ${merged.id} (merged into ${a.customerId})`)
    const bulk = line.requestsTo('POST', '/v2/bot/richmenu/bulk/unlink')
    expect(bulk).toHaveLength(1)
    expect((bulk[0]?.body as { userIds: string[] } | undefined)?.userIds.sort()).toEqual(
      [a.lineUid, b.lineUid, none.lineUid].sort(),
    )
    expect(unlinkRequests()).toHaveLength(1)
    expect(line.richMenuOf(a.lineUid)).toBeUndefined()
    expect(line.richMenuOf(b.lineUid)).toBeUndefined()
    for (const id of [a, b, none].map((x) => x.lineUserId)) {
      expect(await row(id)).toMatchObject({ line_uid: expect.stringMatching(/^erased:/) })
      expect((await row(id)).richmenu_version_id).toBeNull()
    }
  })

  it('still erases when LINE refuses or cannot be reached, and says the menu stayed', async () => {
    // A 5xx, a refusal (not of the id: a 400 is), and a connection dropped after 50 ms.
    for (const failure of [{ status: 500 }, { status: 403 }, { timeoutMs: 50 }]) {
      const f = await friend({ linked: true })
      line.failNext({ method: 'DELETE', path: /\/richmenu$/, ...failure })
      const res = await cli(['customers', 'erase', f.customerId], {
        ...lineEnv(),
        LOG_LEVEL: 'warn',
      })
      expect(res.code).toBe(0)
      expect(res.stdout).toContain(`erased customer ${f.customerId}`)
      const said = `${res.stdout}${res.stderr}`
      expect(said).toContain('rich menu could not be unlinked')
      expect(said).toContain('"users":1')
      expect(said).not.toContain(f.lineUid)
      expect(said).not.toContain(f.lineUid.slice(1))
      // The stand-in refused: the menu stays at LINE, but the row is erased all the same.
      expect(line.richMenuOf(f.lineUid)).toBe(menu.richMenuId)
      const after = await row(f.lineUserId)
      expect(after.line_uid).toMatch(/^erased:/)
      expect(after.richmenu_version_id).toBeNull()
    }
  })

  it('unlinks at LINE a menu Kizuna no longer records (forgotten when a tab menu was lost)', async () => {
    const f = await friend({ linked: true })
    await deps.db
      .updateTable('line_user')
      .set({ richmenu_version_id: null })
      .where('id', '=', f.lineUserId)
      .execute()
    line.clearRequests()
    const res = await cli(['customers', 'erase', f.customerId], lineEnv())
    expect(res.code).toBe(0)
    expect(res.stdout).toContain(`erased customer ${f.customerId}`)
    expect(line.requestsTo('DELETE', `/v2/bot/user/${f.lineUid}/richmenu`)).toHaveLength(1)
    expect(line.richMenuOf(f.lineUid)).toBeUndefined()
    expect((await row(f.lineUserId)).line_uid).toMatch(/^erased:/)
  })

  it('in sandbox mode (no LINE credentials) erases and notes that the menu was not unlinked', async () => {
    const f = await friend({ linked: true })
    line.clearRequests()
    // LINE's addresses point at the stand-in, without credentials: a call would be recorded.
    const res = await cli(['customers', 'erase', f.customerId], {
      DATABASE_URL: env.DATABASE_URL ?? '',
      LINE_API_BASE_URL: line.apiBaseUrl,
      LINE_DATA_API_BASE_URL: line.dataApiBaseUrl,
    })
    expect(res.code).toBe(0)
    expect(res.stdout).toContain(`erased customer ${f.customerId}`)
    expect(`${res.stdout}${res.stderr}`).toContain('sandbox')
    expect(line.requests).toEqual([])
    const after = await row(f.lineUserId)
    expect(after.line_uid).toMatch(/^erased:/)
    expect(after.richmenu_version_id).toBeNull()
  })
})
