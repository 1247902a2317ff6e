import { HTTPFetchError } from '@line/bot-sdk'
import { UnrecoverableError } from 'bullmq'
import { afterAll, describe, expect, it } from 'vitest'
import type { Env } from '../../src/config/env.ts'
import { createMailer } from '../../src/email/mailer.ts'
import { createProcessors } from '../../src/main/processors.ts'
import type { Deps } from '../../src/platform/deps.ts'
import { linkRichMenus } from '../../src/richmenu/richmenu-link.service.ts'
import { oweRelink, readRelinkOwed } from '../../src/richmenu/richmenu-relink.repo.ts'
import { relinkRichMenus } from '../../src/richmenu/richmenu-relink.service.ts'
import type { LinePlatform } from '../../src/sandbox/platform.ts'
import { manualWorker, usePrivateDeps } from '../support/private-deps.ts'
import { createLiveMenu, insertFriend, recorded, retireMenus } from './richmenu-link-fixtures.ts'

let deps: Deps
let env: Env
let line: LinePlatform
usePrivateDeps((privateDeps) => {
  ;({ deps, env, line } = privateDeps)
})
const cleanups: (() => Promise<void>)[] = []
afterAll(async () => {
  for (const fn of cleanups.reverse()) await fn()
})

async function simFriends(n: number) {
  const out = []
  for (let i = 0; i < n; i++) {
    const user = line.users.create()
    user.friendship = 'friend'
    out.push(await insertFriend(deps, { lineUid: user.userId }))
  }
  return out
}

const linkAll = (friends: { lineUserId: string }[]) =>
  linkRichMenus(
    deps,
    friends.map((f) => f.lineUserId),
  )

const perUserLinks = () => line.requestsTo('POST', /^\/v2\/bot\/user\/[^/]+\/richmenu\//)

/** LINE's refusal, as it came: BullMQ retries anything but an UnrecoverableError. */
async function expectRetried(job: Promise<unknown>, status: number) {
  await expect(job).rejects.toThrow(HTTPFetchError)
  await expect(job).rejects.toMatchObject({ status })
  await expect(job).rejects.not.toBeInstanceOf(UnrecoverableError)
}

/** The deploy jobs waiting in the richmenu queue. */
const deployJobs = async () =>
  (await deps.queues.byName.richmenu.getJobs(['wait'])).filter((j) => j.name === 'richmenu.deploy')

/** Deps whose clock reads `at`. */
const depsAt = (at: Date): Deps => ({ ...deps, clock: { now: () => at } })

/**
 * Runs the jobs waiting in the richmenu queue as a worker would, each finishing at once without
 * doing anything (as a deploy that found nothing to make): BullMQ keeps them, completed.
 */
async function completeWaitingJobs() {
  const { take, token } = manualWorker(cleanups, deps, env, 'richmenu')
  while ((await deps.queues.byName.richmenu.getWaitingCount()) > 0) {
    await (await take()).moveToCompleted('done', token, false)
  }
}

describe('a link LINE refuses for the menu or the channel, not for a user', () => {
  it('fails the job, keeps the relink owed and queues a deploy when LINE lost the menu (404)', async () => {
    const menu = await createLiveMenu(deps, ['new_friend'])
    await deps.line.client.deleteRichMenu(menu.richMenuId)
    const friends = await simFriends(4)
    line.clearRequests()

    // Within one hour (a deploy per lost menu an hour).
    const at = depsAt(new Date('2026-12-07T17:05:00Z'))
    await expectRetried(
      linkRichMenus(
        at,
        friends.map((f) => f.lineUserId),
      ),
      404,
    )
    // One bulk call: a refusal about the menu is not sent again one user at a time.
    expect(line.requestsTo('POST', '/v2/bot/richmenu/bulk/link')).toHaveLength(1)
    expect(perUserLinks()).toHaveLength(0)
    for (const f of friends) expect(await recorded(deps, f.lineUserId)).toBeNull()

    await oweRelink(deps.db)
    line.clearRequests()
    await expectRetried(relinkRichMenus(depsAt(new Date('2026-12-07T17:55:00Z'))), 404)
    expect(perUserLinks()).toHaveLength(0)
    expect((await readRelinkOwed(deps.db)).owed).toBe(true)

    // A deploy compares Kizuna's menus with LINE's list and makes the lost one again: queued
    // once however many link calls LINE refused.
    expect((await deployJobs()).map((j) => j.id)).toEqual([
      `richmenu-deploy-lost-${menu.richMenuId}-2026-12-07T17`,
    ])
    await retireMenus(deps, [menu.versionId])
  })

  it('queues another deploy when LINE still lacks the menu after the last one finished', async () => {
    const menu = await createLiveMenu(deps, ['new_friend'])
    await deps.line.client.deleteRichMenu(menu.richMenuId)
    const friends = await simFriends(2)
    const lineUserIds = friends.map((f) => f.lineUserId)
    const first = new Date()
    await expectRetried(linkRichMenus(depsAt(first), lineUserIds), 404)
    // Its deploy ran and finished without making the menu again (it failed for good, or LINE's
    // list still showed the menu): BullMQ keeps the finished job, a day or a week.
    await completeWaitingJobs()
    expect(await deployJobs()).toEqual([])

    const later = new Date(first.getTime() + 60 * 60_000)
    await expectRetried(linkRichMenus(depsAt(later), lineUserIds), 404)
    expect(await deployJobs()).toHaveLength(1)
    await retireMenus(deps, [menu.versionId])
  })

  it('queues no deploy in a process whose rich menu deploys are off (tests: their own menus)', async () => {
    const menu = await createLiveMenu(deps, ['new_friend'])
    await deps.line.client.deleteRichMenu(menu.richMenuId)
    const friends = await simFriends(2)
    const lineUserIds = friends.map((f) => f.lineUserId)
    const before = (await deployJobs()).map((j) => j.id)
    const mailer = createMailer(env, deps.db, { sandbox: false })
    const processors = createProcessors(deps, { mailer, deployRichMenus: false })
    try {
      const ctx = undefined as never
      await expectRetried(processors['richmenu.link-users'].run(deps, { lineUserIds }, ctx), 404)
      await expectRetried(processors['richmenu.relink'].run(deps, {}, ctx), 404)
      // A deploy would send the shipped richmenus/ to this process's LINE and database.
      expect((await deployJobs()).map((j) => j.id)).toEqual(before)
    } finally {
      mailer.close()
      await retireMenus(deps, [menu.versionId])
    }
  })

  it('fails the job when the menu has no image (400), after one call', async () => {
    const menu = await createLiveMenu(deps, ['new_friend'], { image: false })
    const friends = await simFriends(3)
    line.clearRequests()

    await expectRetried(linkAll(friends), 400)
    expect(line.requestsTo('POST', '/v2/bot/richmenu/bulk/link')).toHaveLength(1)
    expect(perUserLinks()).toHaveLength(0)
    for (const f of friends) expect(await recorded(deps, f.lineUserId)).toBeNull()
    await retireMenus(deps, [menu.versionId])
  })

  it('fails the job and keeps the relink owed when LINE refuses the channel (401)', async () => {
    const menu = await createLiveMenu(deps, ['new_friend'])
    const friends = await simFriends(3)
    const revoked = { status: 401, body: { message: 'Authentication failed' }, count: Infinity }
    line.failNext({ method: 'POST', path: '/v2/bot/richmenu/bulk/link', ...revoked })
    line.failNext({ method: 'POST', path: /^\/v2\/bot\/user\/[^/]+\/richmenu\//, ...revoked })
    await oweRelink(deps.db)
    line.clearRequests()

    await expectRetried(relinkRichMenus(deps), 401)
    // The bulk call, then the first user alone: the others are not tried.
    expect(line.requestsTo('POST', '/v2/bot/richmenu/bulk/link')).toHaveLength(1)
    expect(perUserLinks()).toHaveLength(1)
    expect((await readRelinkOwed(deps.db)).owed).toBe(true)
    await expectRetried(linkRichMenus(deps, [friends[0]?.lineUserId ?? '']), 401)
    for (const f of friends) expect(await recorded(deps, f.lineUserId)).toBeNull()

    // The token works again: the job's retry links them (and the earlier tests' friends, whose
    // menus were retired) and settles the relink.
    line.clearFailures()
    expect(await relinkRichMenus(deps)).toMatchObject({ rejected: 0 })
    for (const f of friends) {
      expect(line.richMenuOf(f.lineUid)).toBe(menu.richMenuId)
      expect(await recorded(deps, f.lineUserId)).toBe(menu.versionId)
    }
    expect((await readRelinkOwed(deps.db)).owed).toBe(false)
    await retireMenus(deps, [menu.versionId])
  })
})
