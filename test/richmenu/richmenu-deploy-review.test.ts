import { beforeEach, describe, expect, it } from 'vitest'
import type { Deps } from '../../src/platform/deps.ts'
import { deployRichMenus } from '../../src/richmenu/richmenu-deploy.service.ts'
import { relinkRichMenus } from '../../src/richmenu/richmenu-relink.service.ts'
import type { LinePlatform } from '../../src/sandbox/platform.ts'
import { lineState, type MenusFolder, useDeployWorld } from './richmenu-deploy-fixtures.ts'
import { insertFriend } from './richmenu-link-fixtures.ts'

const world = useDeployWorld()
let deps: Deps
let line: LinePlatform
let folder: MenusFolder
beforeEach(() => {
  ;({ deps, line, folder } = world)
})

const failure = (fn: () => Promise<unknown>) =>
  fn().then(
    () => {
      throw new Error('expected the deploy to fail')
    },
    (error: unknown) => error,
  )
const versions = () =>
  deps.db.selectFrom('richmenu_version').selectAll().orderBy('created_at').execute()

describe('deployRichMenus, review', () => {
  it('re-links the people of a menu LINE lost once checkLine has created it again', async () => {
    await folder.write('welcome', { segments: ['new_friend'], shade: 5 })
    await deployRichMenus(deps, { dir: folder.dir })
    const user = line.users.create()
    user.friendship = 'friend'
    await insertFriend(deps, { lineUid: user.userId })
    await relinkRichMenus(deps)
    const [before] = await versions()
    expect(line.richMenuOf(user.userId)).toBe(before?.line_rich_menu_id)

    // Deleted in the Official Account Manager: LINE unlinks everyone from it.
    await deps.line.client.deleteRichMenu(before?.line_rich_menu_id ?? '')
    expect(line.richMenuOf(user.userId)).toBeUndefined()

    const summary = await deployRichMenus(deps, { dir: folder.dir, checkLine: true })
    expect(summary.changed).toBe(true)
    await relinkRichMenus(deps)
    const [after] = await versions()
    expect(after?.line_rich_menu_id).not.toBe(before?.line_rich_menu_id)
    expect(line.richMenuOf(user.userId)).toBe(after?.line_rich_menu_id)
  })

  it('keeps the alias and the default on the live menu when an abandoned edit is undone', async () => {
    await folder.write('main', { alias: 'main', default: true, shade: 10 })
    await deployRichMenus(deps, { dir: folder.dir })
    const [live] = await versions()

    // An edit whose deploy stops after the alias moved to its new menu.
    await folder.write('main', { alias: 'main', default: true, shade: 11 })
    line.failNext({ method: 'POST', path: /^\/v2\/bot\/user\/all\/richmenu\/[^/]+$/, status: 500 })
    await failure(() => deployRichMenus(deps, { dir: folder.dir }))
    expect(lineState(line).aliases.main).not.toBe(live?.line_rich_menu_id)

    // The edit is undone: the live version is the folder's content again.
    await folder.write('main', { alias: 'main', default: true, shade: 10 })
    await deployRichMenus(deps, { dir: folder.dir })
    expect(lineState(line)).toEqual({
      menus: [live?.line_rich_menu_id],
      aliases: { main: live?.line_rich_menu_id },
      defaultRichMenuId: live?.line_rich_menu_id,
    })
  })

  it('clears the default of a removed default menu on the run after a failed clear', async () => {
    await folder.write('main', { default: true, shade: 20 })
    await folder.write('other', { shade: 21 })
    await deployRichMenus(deps, { dir: folder.dir })
    const [main] = (await versions()).filter((v) => v.name === 'main')

    await folder.remove('main')
    line.failNext({ method: 'DELETE', path: '/v2/bot/user/all/richmenu', status: 500 })
    await failure(() => deployRichMenus(deps, { dir: folder.dir }))
    line.clearRequests()

    await deployRichMenus(deps, { dir: folder.dir })
    expect(line.requestsTo('DELETE', '/v2/bot/user/all/richmenu')).toHaveLength(1)
    expect(line.requestsTo('DELETE', `/v2/bot/richmenu/${main?.line_rich_menu_id}`)).toHaveLength(1)
  })

  it('deletes a retired menu that only people who blocked the account are still recorded on', async () => {
    await folder.write('welcome', { segments: ['new_friend'], shade: 30 })
    await deployRichMenus(deps, { dir: folder.dir })
    const user = line.users.create()
    user.friendship = 'friend'
    const friend = await insertFriend(deps, { lineUid: user.userId })
    await relinkRichMenus(deps)
    const [old] = await versions()
    // They block the account (unfollow): nothing is linked to them until they come back.
    await deps.db
      .updateTable('line_user')
      .set({ status: 'blocked' })
      .where('id', '=', friend.lineUserId)
      .execute()

    await folder.write('welcome', { segments: ['new_friend'], shade: 31 })
    const summary = await deployRichMenus(deps, { dir: folder.dir })
    await relinkRichMenus(deps)
    const again = await deployRichMenus(deps, { dir: folder.dir })

    expect([summary.deleted, again.deleted].flat()).toEqual(['welcome'])
    expect(again.waiting).toEqual([])
    expect(lineState(line).menus).not.toContain(old?.line_rich_menu_id)
  })
})
