import { sql } from 'kysely'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { eraseCustomer } from '../../src/customers/erase.service.ts'
import type { Deps } from '../../src/platform/deps.ts'
import { claimErasedUnlinks, insertErasedUnlinks } from '../../src/richmenu/erased-unlink.repo.ts'
import { unlinkErasedMenus } from '../../src/richmenu/erased-unlink.service.ts'
import { linkRichMenus } from '../../src/richmenu/richmenu-link.service.ts'
import type { LinePlatform } from '../../src/sandbox/platform.ts'
import { standInFriend, startWithLiveMenu } from '../customers/erase-richmenu-fixtures.ts'
import { insertFriend, type LiveMenu } from './richmenu-link-fixtures.ts'

// A database of its own: the rounds below look at every pending unlink.
const cleanups: (() => Promise<void>)[] = []
let deps: Deps
let line: LinePlatform
let menu: LiveMenu
beforeAll(async () => {
  ;({ deps, line, menu } = await startWithLiveMenu(cleanups))
})
afterAll(async () => {
  for (const c of cleanups.reverse()) await c()
})
beforeEach(async () => {
  line.clearFailures()
  line.clearRequests()
  await deps.db.deleteFrom('erased_menu_unlink').execute()
})

const linkedFriend = (customerId?: string) =>
  standInFriend({ deps, line, menu }, { linked: true, customerId })
const rowsLeft = () => deps.db.selectFrom('erased_menu_unlink').select('line_uid').execute()
/** An unlink call at LINE: one user's, or a bulk one. */
const anyUnlink = { path: /\/richmenu$|\/richmenu\/bulk\/unlink$/ }

describe('an unlink owed again while a round holds its row', () => {
  it('unlinks a late link that lands after the round unlinked that person, though the round then finishes', async () => {
    const f = await linkedFriend()
    const g = await linkedFriend(f.customerId)
    const { menuUnlinks } = await eraseCustomer(deps.db, f.customerId)
    // The bulk call is refused: one by one, the first of them held, then the second.
    line.failNext({ method: 'POST', path: '/v2/bot/richmenu/bulk/unlink', status: 400 })
    const hf = line.holdNext({ method: 'DELETE', path: `/v2/bot/user/${f.lineUid}/richmenu` })
    const hg = line.holdNext({ method: 'DELETE', path: `/v2/bot/user/${g.lineUid}/richmenu` })
    const round = unlinkErasedMenus(deps, menuUnlinks)
    const first = await Promise.race([hf.arrived.then(() => f), hg.arrived.then(() => g)])
    const [firstHold, secondHold] = first === f ? [hf, hg] : [hg, hf]
    firstHold.release()
    await secondHold.arrived
    expect(line.richMenuOf(first.lineUid)).toBeUndefined()

    // A link job that read the person before the erasure lands its link now; its record fails,
    // and it records the unlink it owes and sends it (unlinkErased in richmenu-link.service.ts).
    await deps.line.call('richmenu.link', (c) =>
      c.linkRichMenuIdToUser(first.lineUid, menu.richMenuId),
    )
    const late = await unlinkErasedMenus(deps, await insertErasedUnlinks(deps.db, [first.lineUid]))

    secondHold.release()
    expect(await round).toMatchObject({ unlinked: 2, failed: 0 })
    expect(late).toMatchObject({ unlinked: 1, failed: 0 })
    expect(line.richMenuOf(f.lineUid)).toBeUndefined()
    expect(line.richMenuOf(g.lineUid)).toBeUndefined()
    expect(await rowsLeft()).toEqual([])
  })

  it('keeps the unlink of a person erased again while the sweeper’s round held the row of their first erasure', async () => {
    // Erased, the unlink not sent (the command died); back as a friend and linked.
    const f = await linkedFriend()
    const [first] = (await eraseCustomer(deps.db, f.customerId)).menuUnlinks
    const other = await linkedFriend()
    const [otherUnlink] = (await eraseCustomer(deps.db, other.customerId)).menuUnlinks
    const again = await insertFriend(deps, { lineUid: f.lineUid })
    expect(await linkRichMenus(deps, [again.lineUserId])).toMatchObject({ linked: 1 })
    expect(line.richMenuOf(f.lineUid)).toBe(menu.richMenuId)

    // The sweeper's round takes both rows; its call is held while the person is erased again.
    const held = line.holdNext(anyUnlink)
    const sweeperRound = unlinkErasedMenus(deps, [first ?? '', otherUnlink ?? ''])
    await held.arrived
    const erased = await eraseCustomer(deps.db, again.customerId)
    expect(erased.menuUnlinks).toEqual([first])
    const command = await unlinkErasedMenus(deps, erased.menuUnlinks)

    held.release()
    await sweeperRound
    expect(command).toMatchObject({ unlinked: 1, failed: 0 })
    expect(line.richMenuOf(f.lineUid)).toBeUndefined()
    expect(line.richMenuOf(other.lineUid)).toBeUndefined()
    expect(await rowsLeft()).toEqual([])
  })
})

describe('the erasure’s own unlink, after the commit', () => {
  it('counts as pending the rows another round holds, and sends nothing for them', async () => {
    const f = await linkedFriend()
    const { menuUnlinks } = await eraseCustomer(deps.db, f.customerId)
    await claimErasedUnlinks(deps.db, menuUnlinks, 300)
    line.clearRequests()
    const menus = await unlinkErasedMenus(deps, menuUnlinks)
    expect(menus).toEqual({ unlinked: 0, refused: 0, failed: 0, pending: 1 })
    expect(line.requests).toEqual([])
    expect(line.richMenuOf(f.lineUid)).toBe(menu.richMenuId)
  })
})

describe('a round of many rows', () => {
  /** `n` erased LINE users with the live menu, their rows written (no unlink sent yet). */
  async function erasedWithMenus(n: number) {
    const users = Array.from({ length: n }, () => line.users.create())
    for (const u of users) u.friendship = 'friend'
    await deps.line.call('richmenu.link', (c) =>
      c.linkRichMenuIdToUsers({
        richMenuId: menu.richMenuId,
        userIds: users.map((u) => u.userId),
      }),
    )
    for (const u of users) expect(line.richMenuOf(u.userId)).toBe(menu.richMenuId)
    const ids = await insertErasedUnlinks(
      deps.db,
      users.map((u) => u.userId),
    )
    line.clearRequests()
    return { users, ids }
  }
  const leased = async () =>
    (
      await deps.db
        .selectFrom('erased_menu_unlink')
        .select('id')
        .where('not_before', '>', sql<Date>`now()`)
        .execute()
    ).length

  it('holds only the rows it is unlinking, not those it will reach later, which a lease may not outlast', async () => {
    const { users, ids } = await erasedWithMenus(120)
    const held = line.holdNext(anyUnlink)
    const round = unlinkErasedMenus(deps, ids)
    await held.arrived
    const whileFirstCall = await leased()
    held.release()
    expect(await round).toEqual({ unlinked: 120, refused: 0, failed: 0, pending: 0 })
    expect(whileFirstCall).toBeGreaterThan(0)
    expect(whileFirstCall).toBeLessThan(120)
    for (const u of users) expect(line.richMenuOf(u.userId)).toBeUndefined()
    expect(await rowsLeft()).toEqual([])
  })

  it('sends nothing more once LINE failed a call for a reason not about the ids; all wait for a retry', async () => {
    const { users, ids } = await erasedWithMenus(120)
    line.failNext({ method: 'POST', path: '/v2/bot/richmenu/bulk/unlink', status: 500 })
    expect(await unlinkErasedMenus(deps, ids)).toEqual({
      unlinked: 0,
      refused: 0,
      failed: 120,
      failure: '500',
      pending: 0,
    })
    expect(line.requests).toHaveLength(1)
    expect(await leased()).toBe(120)
    expect(line.richMenuOf(users[0]?.userId ?? '')).toBe(menu.richMenuId)
  })
})
