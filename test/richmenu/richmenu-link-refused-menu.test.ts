import { describe, expect, it } from 'vitest'
import type { Deps } from '../../src/platform/deps.ts'
import { linkRichMenus, relinkRichMenus } from '../../src/richmenu/richmenu-link.service.ts'
import type { LinePlatform } from '../../src/sandbox/platform.ts'
import { usePrivateDeps } from '../support/private-deps.ts'
import { createLiveMenu, insertFriend, retireMenus } from './richmenu-link-fixtures.ts'

let deps: Deps
let line: LinePlatform
usePrivateDeps((privateDeps) => {
  ;({ deps, line } = privateDeps)
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

const perUserLinks = () => line.requestsTo('POST', /^\/v2\/bot\/user\/[^/]+\/richmenu\//)

describe('a bulk link LINE refuses for the menu, not for a user', () => {
  it('is not sent again one user at a time when LINE lost the menu (404)', async () => {
    const menu = await createLiveMenu(deps, ['new_friend'])
    await deps.line.client.deleteRichMenu(menu.richMenuId)
    const friends = await simFriends(4)
    line.clearRequests()

    const counts = await linkRichMenus(
      deps,
      friends.map((f) => f.lineUserId),
    )
    expect(counts).toMatchObject({ linked: 0, rejected: 4, calls: 1 })
    expect(perUserLinks()).toHaveLength(0)

    line.clearRequests()
    const relinked = await relinkRichMenus(deps)
    expect(relinked).toMatchObject({ linked: 0, rejected: 4, calls: 1 })
    expect(perUserLinks()).toHaveLength(0)
    await retireMenus(deps, [menu.versionId])
  })

  it('is not sent again one user at a time when the menu has no image (400)', async () => {
    const menu = await createLiveMenu(deps, ['new_friend'], { image: false })
    const friends = await simFriends(3)
    line.clearRequests()

    const counts = await linkRichMenus(
      deps,
      friends.map((f) => f.lineUserId),
    )
    expect(counts).toMatchObject({ linked: 0, calls: 1 })
    expect(perUserLinks()).toHaveLength(0)
    await retireMenus(deps, [menu.versionId])
  })
})
