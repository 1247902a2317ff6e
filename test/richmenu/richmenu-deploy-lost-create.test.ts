import type { messagingApi } from '@line/bot-sdk'
import { beforeEach, describe, expect, it } from 'vitest'
import type { Deps } from '../../src/platform/deps.ts'
import { deployRichMenus } from '../../src/richmenu/richmenu-deploy.service.ts'
import type { LinePlatform } from '../../src/sandbox/platform.ts'
import {
  downloadImage,
  lineState,
  type MenusFolder,
  menuJson,
  png,
  useDeployWorld,
} from './richmenu-deploy-fixtures.ts'

const world = useDeployWorld({ LINE_TIMEOUT_MS: '300' })
let deps: Deps
let line: LinePlatform
let folder: MenusFolder
beforeEach(() => {
  ;({ deps, line, folder } = world)
})

const rows = () => deps.db.selectFrom('richmenu_version').selectAll().orderBy('name').execute()
const failure = (fn: () => Promise<unknown>) =>
  fn().then(
    () => {
      throw new Error('expected the deploy to fail')
    },
    (error: unknown) => error,
  )
const richMenuOf = (name: string) => menuJson(name).richMenu as messagingApi.RichMenuRequest

/** LINE makes the menu, but its answer comes after LINE_TIMEOUT_MS (300 ms): Kizuna gave up. */
const loseCreateAnswer = () =>
  line.failNext({ method: 'POST', path: '/v2/bot/richmenu', timeoutMs: 600, carriedOut: true })

describe('deployRichMenus, a create whose answer was lost', () => {
  it('adopts the menu LINE made instead of creating a second one', async () => {
    await folder.write('main', { alias: 'main', default: true, shade: 50 })
    loseCreateAnswer()
    await failure(() => deployRichMenus(deps, { dir: folder.dir }))
    const [made] = lineState(line).menus
    expect(made).toBeDefined()
    expect((await rows())[0]?.line_rich_menu_id).toBeNull()

    const summary = await deployRichMenus(deps, { dir: folder.dir })
    expect(summary.created).toEqual(['main'])
    expect(line.requestsTo('POST', '/v2/bot/richmenu')).toHaveLength(1)
    expect(lineState(line)).toEqual({
      menus: [made],
      aliases: { main: made },
      defaultRichMenuId: made,
    })
    const [row] = await rows()
    expect(row?.line_rich_menu_id).toBe(made)
    expect(row?.deployed_at).not.toBeNull()
    expect(await downloadImage(line, made ?? '')).toEqual(png(50))
  })

  it('leaves menus made by other tools alone, even when a create was lost', async () => {
    const other = await deps.line.client.createRichMenu({
      ...richMenuOf('main'),
      name: 'made in the OA Manager',
    })
    await folder.write('main', { shade: 51 })
    line.failNext({ method: 'POST', path: '/v2/bot/richmenu', timeoutMs: 600 })
    await failure(() => deployRichMenus(deps, { dir: folder.dir }))

    await deployRichMenus(deps, { dir: folder.dir, checkLine: true })
    const [row] = await rows()
    expect(lineState(line).menus.sort()).toEqual([other.richMenuId, row?.line_rich_menu_id].sort())
    expect(line.requestsTo('DELETE', /^\/v2\/bot\/richmenu\//)).toHaveLength(0)
  })

  it('at start, adopts an unrecorded identical menu for a version without a LINE id', async () => {
    await folder.write('main', { alias: 'main', shade: 52 })
    loseCreateAnswer()
    await failure(() => deployRichMenus(deps, { dir: folder.dir }))
    const [made] = lineState(line).menus
    // The attempt was not recorded (a row from before the fix, or written by hand).
    await deps.db.updateTable('richmenu_version').set({ line_create_attempted_at: null }).execute()

    await deployRichMenus(deps, { dir: folder.dir, checkLine: true })
    expect(line.requestsTo('POST', '/v2/bot/richmenu')).toHaveLength(1)
    expect(lineState(line).menus).toEqual([made])
    expect((await rows())[0]?.line_rich_menu_id).toBe(made)
  })

  it('at start, deletes an orphan identical to a version that has its LINE menu', async () => {
    await folder.write('main', { alias: 'main', shade: 53 })
    await deployRichMenus(deps, { dir: folder.dir })
    const [row] = await rows()
    // An earlier attempt whose answer was lost, then created again by a deploy without the fix.
    const orphan = await deps.line.client.createRichMenu(richMenuOf('main'))

    await deployRichMenus(deps, { dir: folder.dir, checkLine: true })
    expect(line.requestsTo('DELETE', `/v2/bot/richmenu/${orphan.richMenuId}`)).toHaveLength(1)
    expect(lineState(line).menus).toEqual([row?.line_rich_menu_id])
    expect((await rows())[0]?.line_rich_menu_id).toBe(row?.line_rich_menu_id)
  })
})
