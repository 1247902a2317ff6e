import { beforeEach, describe, expect, it } from 'vitest'
import type { Deps } from '../../src/platform/deps.ts'
import { deployRichMenus } from '../../src/richmenu/richmenu-deploy.service.ts'
import { relinkRichMenus } from '../../src/richmenu/richmenu-relink.service.ts'
import type { LinePlatform } from '../../src/sandbox/platform.ts'
import { createCustomer } from '../customers/factories.ts'
import { expectNoRejectedRequests } from '../support/line.ts'
import {
  downloadImage,
  lineState,
  type MenusFolder,
  png,
  useDeployWorld,
} from './richmenu-deploy-fixtures.ts'

const world = useDeployWorld()
let deps: Deps
let line: LinePlatform
let folder: MenusFolder
beforeEach(() => {
  ;({ deps, line, folder } = world)
})

const versions = () =>
  deps.db.selectFrom('richmenu_version').selectAll().orderBy('created_at').execute()
const liveVersion = (name: string) =>
  deps.db
    .selectFrom('richmenu_version')
    .selectAll()
    .where('name', '=', name)
    .where('retired_at', 'is', null)
    .executeTakeFirstOrThrow()
const creates = () => line.requestsTo('POST', '/v2/bot/richmenu')

async function twoMenus() {
  await folder.write('main', { alias: 'main', default: true, switchTo: 'vip', shade: 10 })
  await folder.write('vip', { alias: 'vip', segments: ['vip'], switchTo: 'main', shade: 20 })
}

describe('deployRichMenus', () => {
  it('creates each menu, uploads its image, points its alias and sets the default', async () => {
    await twoMenus()
    const summary = await deployRichMenus(deps, { dir: folder.dir })

    expect(summary).toMatchObject({ created: ['main', 'vip'], unchanged: [], changed: true })
    const [main, vip] = [await liveVersion('main'), await liveVersion('vip')]
    expect(main.deployed_at).not.toBeNull()
    expect(vip.segments).toEqual(['vip'])
    const state = lineState(line)
    expect(state.menus.sort()).toEqual([main.line_rich_menu_id, vip.line_rich_menu_id].sort())
    expect(state.aliases).toEqual({ main: main.line_rich_menu_id, vip: vip.line_rich_menu_id })
    expect(state.defaultRichMenuId).toBe(main.line_rich_menu_id)
    expect(await downloadImage(line, main.line_rich_menu_id ?? '')).toEqual(png(10))
    expect(await downloadImage(line, vip.line_rich_menu_id ?? '')).toEqual(png(20))
    const upload = line.requestsTo('POST', `/v2/bot/richmenu/${main.line_rich_menu_id}/content`)
    expect(upload.map((r) => [r.host, r.headers['content-type']])).toEqual([['data', 'image/png']])
    expect(line.requestsTo('POST', '/v2/bot/richmenu/validate')).toHaveLength(2)
    expectNoRejectedRequests(line)
  })

  it('makes no LINE call at all when nothing changed', async () => {
    await twoMenus()
    await deployRichMenus(deps, { dir: folder.dir })
    // The relink the first deploy owed (it had no afterChange to queue it) has run.
    await relinkRichMenus(deps)
    line.clearRequests()
    let called = false
    const summary = await deployRichMenus(deps, {
      dir: folder.dir,
      afterChange: async () => {
        called = true
      },
    })
    expect(summary).toMatchObject({ created: [], unchanged: ['main', 'vip'], changed: false })
    expect(line.requests).toEqual([])
    expect(called).toBe(false)
  })

  it('creates one new menu for a changed image, moves its alias, retires and deletes the old one', async () => {
    await twoMenus()
    await deployRichMenus(deps, { dir: folder.dir })
    const before = await liveVersion('vip')
    const mainBefore = await liveVersion('main')
    line.clearRequests()
    await folder.write('vip', { alias: 'vip', segments: ['vip'], switchTo: 'main', shade: 99 })
    const changes: unknown[] = []
    const summary = await deployRichMenus(deps, {
      dir: folder.dir,
      afterChange: async (s) => {
        changes.push(s)
      },
    })

    expect(summary).toMatchObject({
      created: ['vip'],
      unchanged: ['main'],
      retired: ['vip'],
      deleted: ['vip'],
      waiting: [],
      changed: true,
    })
    expect(changes).toEqual([summary])
    expect(creates()).toHaveLength(1)
    const after = await liveVersion('vip')
    expect(after.id).not.toBe(before.id)
    expect(await downloadImage(line, after.line_rich_menu_id ?? '')).toEqual(png(99))
    const state = lineState(line)
    expect(state.aliases).toEqual({
      main: mainBefore.line_rich_menu_id,
      vip: after.line_rich_menu_id,
    })
    expect(state.menus).not.toContain(before.line_rich_menu_id)
    expect(line.requestsTo('POST', '/v2/bot/richmenu/alias')).toHaveLength(1) // 400 conflict
    expect(line.requestsTo('POST', '/v2/bot/richmenu/alias/vip')).toHaveLength(1) // the update
    const old = (await versions()).find((v) => v.id === before.id)
    expect(old?.retired_at).not.toBeNull()
    expect(old?.line_rich_menu_id).toBeNull()
    // The default stays on main: no default call for an unchanged menu.
    expect(line.requestsTo('POST', /\/v2\/bot\/user\/all\/richmenu\//)).toEqual([])
    expect(state.defaultRichMenuId).toBe(mainBefore.line_rich_menu_id)
  })

  it('keeps a retired menu people are still linked to until a later deploy finds them moved', async () => {
    await twoMenus()
    await deployRichMenus(deps, { dir: folder.dir })
    const old = await liveVersion('vip')
    const { lineUid } = await createCustomer(deps.db, { line: true })
    await deps.db
      .updateTable('line_user')
      .set({ richmenu_version_id: old.id })
      .where('line_uid', '=', lineUid ?? '')
      .execute()
    await folder.write('vip', { alias: 'vip', segments: ['vip'], shade: 77 })
    const first = await deployRichMenus(deps, { dir: folder.dir })
    expect(first).toMatchObject({
      created: ['vip'],
      retired: ['vip'],
      deleted: [],
      waiting: ['vip'],
    })
    expect(lineState(line).menus).toContain(old.line_rich_menu_id)

    // Someone is still linked: the next deploy, unchanged otherwise, waits again and says so.
    line.clearRequests()
    const calls: string[] = []
    const second = await deployRichMenus(deps, {
      dir: folder.dir,
      afterChange: async (s) => {
        calls.push(s.waiting.join())
      },
    })
    expect(second).toMatchObject({ changed: false, waiting: ['vip'], deleted: [] })
    expect(calls).toEqual(['vip'])
    expect(line.requests).toEqual([])

    const live = await liveVersion('vip')
    await deps.db
      .updateTable('line_user')
      .set({ richmenu_version_id: live.id })
      .where('line_uid', '=', lineUid ?? '')
      .execute()
    const third = await deployRichMenus(deps, { dir: folder.dir })
    expect(third).toMatchObject({ changed: false, deleted: ['vip'], waiting: [] })
    expect(line.requests.map((r) => `${r.method} ${r.path}`)).toEqual([
      `DELETE /v2/bot/richmenu/${old.line_rich_menu_id}`,
    ])
    expect(lineState(line).menus).not.toContain(old.line_rich_menu_id)
  })

  it('deletes a retired menu that only blocked (or erased) people were linked to', async () => {
    await twoMenus()
    await deployRichMenus(deps, { dir: folder.dir })
    const old = await liveVersion('vip')
    // Relinks pass the blocked by (an erased person's row is blocked too): their row would keep
    // the retired version for good, and LINE's 1000 menus fill up one deploy at a time.
    const { lineUid } = await createCustomer(deps.db, { line: true })
    await deps.db
      .updateTable('line_user')
      .set({ richmenu_version_id: old.id, status: 'blocked' })
      .where('line_uid', '=', lineUid ?? '')
      .execute()
    await folder.write('vip', { alias: 'vip', segments: ['vip'], shade: 78 })
    const summary = await deployRichMenus(deps, { dir: folder.dir })
    expect(summary).toMatchObject({ retired: ['vip'], deleted: ['vip'], waiting: [] })
    expect(lineState(line).menus).not.toContain(old.line_rich_menu_id)
  })

  it('retires a removed folder, deletes its menu and alias, and clears the default it held', async () => {
    // No tabs between them: vip's switch to main would stop the deploy once main is gone.
    await folder.write('main', { alias: 'main', default: true, shade: 10 })
    await folder.write('vip', { alias: 'vip', segments: ['vip'], shade: 20 })
    await deployRichMenus(deps, { dir: folder.dir })
    const main = await liveVersion('main')
    const vip = await liveVersion('vip')
    await folder.remove('main')
    const summary = await deployRichMenus(deps, { dir: folder.dir })

    expect(summary).toMatchObject({
      created: [],
      unchanged: ['vip'],
      retired: ['main'],
      deleted: ['main'],
      changed: true,
    })
    const state = lineState(line)
    expect(state.menus).toEqual([vip.line_rich_menu_id])
    expect(state.aliases).toEqual({ vip: vip.line_rich_menu_id })
    expect(state.defaultRichMenuId).toBeUndefined()
    expect(line.requestsTo('DELETE', '/v2/bot/user/all/richmenu')).toHaveLength(1)
    expect(line.requestsTo('DELETE', '/v2/bot/richmenu/alias/main')).toHaveLength(1)
    const row = (await versions()).find((v) => v.id === main.id)
    expect(row).toMatchObject({ line_rich_menu_id: null })
    expect(row?.retired_at).not.toBeNull()
    // What Kizuna recorded LINE points at: vip's alias, and no default.
    const pointers = await deps.db
      .selectFrom('richmenu_pointer')
      .select(['pointer', 'line_rich_menu_id', 'settled'])
      .orderBy('pointer')
      .execute()
    expect(pointers).toEqual([
      { pointer: 'alias:vip', line_rich_menu_id: vip.line_rich_menu_id, settled: true },
      { pointer: 'default', line_rich_menu_id: null, settled: true },
    ])
    expectNoRejectedRequests(line)
  })

  it('moves an alias from a removed folder to the folder that now has it, without deleting it', async () => {
    await folder.write('spring', { alias: 'season', shade: 1 })
    await deployRichMenus(deps, { dir: folder.dir })
    await folder.remove('spring')
    await folder.write('summer', { alias: 'season', shade: 2 })
    line.clearRequests()
    await deployRichMenus(deps, { dir: folder.dir })

    const summer = await liveVersion('summer')
    expect(lineState(line).aliases).toEqual({ season: summer.line_rich_menu_id })
    expect(line.requestsTo('DELETE', '/v2/bot/richmenu/alias/season')).toEqual([])
  })

  it('deploys a content that came back (an undone edit) again', async () => {
    await folder.write('main', { alias: 'main', default: true, shade: 5 })
    await deployRichMenus(deps, { dir: folder.dir })
    const first = await liveVersion('main')
    await folder.write('main', { alias: 'main', default: true, shade: 6 })
    await deployRichMenus(deps, { dir: folder.dir })
    await folder.write('main', { alias: 'main', default: true, shade: 5 })
    const summary = await deployRichMenus(deps, { dir: folder.dir })

    expect(summary).toMatchObject({ created: ['main'], retired: ['main'], deleted: ['main'] })
    const live = await liveVersion('main')
    expect(live.id).toBe(first.id)
    expect(live.line_rich_menu_id).not.toBe(first.line_rich_menu_id)
    const state = lineState(line)
    expect(state.menus).toEqual([live.line_rich_menu_id])
    expect(state.defaultRichMenuId).toBe(live.line_rich_menu_id)
    expect(await downloadImage(line, live.line_rich_menu_id ?? '')).toEqual(png(5))
  })
})
