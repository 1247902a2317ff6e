import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import type { Deps } from '../../src/platform/deps.ts'
import { forgetRichMenuOf, linkRichMenus } from '../../src/richmenu/richmenu-link.service.ts'
import type { LinePlatform } from '../../src/sandbox/platform.ts'
import { startPrivateDeps } from '../support/private-deps.ts'
import { createLiveMenu, insertFriend, type LiveMenu } from './richmenu-link-fixtures.ts'

/** The menu recorded for a LINE user stays what LINE shows them, whatever LINE did with a call. */
const cleanups: (() => Promise<void>)[] = []
let deps: Deps
let line: LinePlatform
let menu: LiveMenu

beforeAll(async () => {
  ;({ deps, line } = await startPrivateDeps(cleanups))
  menu = await createLiveMenu(deps, ['new_friend'])
})
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup()
})
beforeEach(() => {
  line.clearRequests()
  line.clearFailures()
})

/** A friend on the stand-in and in Kizuna, no menu recorded yet. */
async function simFriend() {
  const user = line.users.create()
  user.friendship = 'friend'
  return insertFriend(deps, { lineUid: user.userId })
}

const recorded = async (lineUserId: string) =>
  (
    await deps.db
      .selectFrom('line_user')
      .select('richmenu_version_id')
      .where('id', '=', lineUserId)
      .executeTakeFirstOrThrow()
  ).richmenu_version_id

describe('a link call LINE answered while the user blocked us', () => {
  it('is not recorded over the unblock that forgot the (empty) record: the user is linked', async () => {
    const racer = await simFriend()
    // Job A reads the row (nothing recorded) and calls LINE; the user has blocked meanwhile, so
    // LINE answers 200 and links nothing (LINE-API.md §4). Its answer takes 300 ms.
    const path = `/v2/bot/user/${racer.lineUid}/richmenu/${menu.richMenuId}`
    line.failNext({ method: 'POST', path, status: 200, body: {}, timeoutMs: 300 })
    const jobA = linkRichMenus(deps, [racer.lineUserId])
    await expect.poll(() => line.requestsTo('POST', path).length).toBe(1)
    // The unblock: the record is forgotten (it was empty already) and its link job queued.
    await forgetRichMenuOf(deps.db, racer.lineUserId)
    await jobA
    // The unblock's job: A's record must not make it think the menu is linked.
    await linkRichMenus(deps, [racer.lineUserId])

    expect(line.richMenuOf(racer.lineUid)).toBe(menu.richMenuId)
    expect(await recorded(racer.lineUserId)).toBe(menu.versionId)
  })
})
