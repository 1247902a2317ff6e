import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createMailer } from '../../src/email/mailer.ts'
import { jobIds } from '../../src/jobs.ts'
import { createProcessors } from '../../src/main/processors.ts'
import type { Deps } from '../../src/platform/deps.ts'
import { createWorkerRedis } from '../../src/platform/redis.ts'
import { startWorkers } from '../../src/platform/workers.ts'
import { linkRichMenus } from '../../src/richmenu/richmenu-link.service.ts'
import type { LinePlatform } from '../../src/sandbox/platform.ts'
import { startPrivateDeps } from '../support/private-deps.ts'
import { eventually } from '../support/wait.ts'
import { createLiveMenu, insertFriend, type LiveMenu } from './richmenu-link-fixtures.ts'

/** The checks of bulk links (500 questions to LINE each) never hold up a new friend's menu. */
const cleanups: (() => Promise<void>)[] = []
let deps: Deps
let line: LinePlatform
let menu: LiveMenu
let startRichMenuWorker: () => void

beforeAll(async () => {
  const started = await startPrivateDeps(cleanups)
  ;({ deps, line } = started)
  menu = await createLiveMenu(deps, ['new_friend'])
  startRichMenuWorker = () => {
    const redis = createWorkerRedis(started.env.REDIS_URL)
    cleanups.push(async () => redis.disconnect())
    const processors = createProcessors(deps, {
      mailer: createMailer(started.env, deps.db, { sandbox: false }),
    })
    const workers = startWorkers(deps, processors, redis, { queues: ['richmenu'] })
    cleanups.push(() => workers.close())
  }
})
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup()
})

async function simFriend() {
  const user = line.users.create()
  user.friendship = 'friend'
  return insertFriend(deps, { lineUid: user.userId })
}

const askedAbout = () => line.requestsTo('GET', /^\/v2\/bot\/user\/U[0-9a-f]+\/richmenu$/)

describe('richmenu.check-links jobs on the richmenu queue', () => {
  it("wait behind a new follow's link job queued after them", async () => {
    for (let i = 0; i < 4; i++) {
      const pair = [await simFriend(), await simFriend()]
      await linkRichMenus(
        deps,
        pair.map((f) => f.lineUserId),
      )
    }
    const checks = (await deps.queues.byName.richmenu.getJobs(['delayed'])).filter(
      (j) => j.name === 'richmenu.check-links',
    )
    expect(checks).toHaveLength(4)
    // Their minute is up: they wait for a worker, as the checks of a 100k relink would.
    for (const check of checks) await check.promote()
    const follower = await simFriend()
    await deps.queues.enqueue(
      'richmenu.link-users',
      { lineUserIds: [follower.lineUserId] },
      { jobId: jobIds.richMenuLink([follower.lineUserId], 'follow-test') },
    )
    line.clearRequests()
    // The first check to ask LINE waits there, so order does not depend on who is faster.
    const held = line.holdNext({ method: 'GET', path: /\/richmenu$/ })
    startRichMenuWorker()

    const followerLink = `/v2/bot/user/${follower.lineUid}/richmenu/${menu.richMenuId}`
    await eventually(() => expect(line.requestsTo('POST', followerLink)).toHaveLength(1))
    // Only the check that took the worker's other slot may have asked LINE before the link
    // (about its two users, one of them held): no other check ran first.
    const askedFirst = line.requests.findIndex((r) => r.path === followerLink)
    expect(askedFirst).toBeLessThanOrEqual(2)

    held.release()
    await eventually(() => expect(askedAbout()).toHaveLength(8))
    expect(line.richMenuOf(follower.lineUid)).toBe(menu.richMenuId)
  })
})
