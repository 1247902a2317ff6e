import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { sql } from 'kysely'
import { beforeEach, describe, expect, it } from 'vitest'
import type { Deps } from '../../src/platform/deps.ts'
import { AppError } from '../../src/platform/errors.ts'
import { deployRichMenus } from '../../src/richmenu/richmenu-deploy.service.ts'
import type { LinePlatform } from '../../src/sandbox/platform.ts'
import { lockWaitOn } from '../support/locks.ts'
import {
  downloadImage,
  expectTwoDeploysCreateOnce,
  lineState,
  type MenusFolder,
  menuJson,
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

const rows = () => deps.db.selectFrom('richmenu_version').selectAll().orderBy('name').execute()
const creates = () => line.requestsTo('POST', '/v2/bot/richmenu')
const failure = (fn: () => Promise<unknown>) =>
  fn().then(
    () => {
      throw new Error('expected the deploy to fail')
    },
    (error: unknown) => error,
  )

describe('deployRichMenus, stopped and resumed', () => {
  it('resumes a menu created before a failed upload without creating a second one', async () => {
    await folder.write('main', { alias: 'main', default: true, shade: 42 })
    line.failNext({ method: 'POST', path: /^\/v2\/bot\/richmenu\/[^/]+\/content$/, status: 500 })
    await failure(() => deployRichMenus(deps, { dir: folder.dir }))
    const [crashed] = await rows()
    expect(crashed?.line_rich_menu_id).toMatch(/^richmenu-/)
    expect(crashed?.deployed_at).toBeNull()

    const summary = await deployRichMenus(deps, { dir: folder.dir })
    expect(summary.created).toEqual(['main'])
    expect(creates()).toHaveLength(1)
    const [row] = await rows()
    expect(row?.line_rich_menu_id).toBe(crashed?.line_rich_menu_id)
    expect(row?.deployed_at).not.toBeNull()
    expect(lineState(line)).toEqual({
      menus: [crashed?.line_rich_menu_id],
      aliases: { main: crashed?.line_rich_menu_id },
      defaultRichMenuId: crashed?.line_rich_menu_id,
    })
    expect(await downloadImage(line, row?.line_rich_menu_id ?? '')).toEqual(png(42))
  })

  it('counts "already uploaded" as done when the image went up before the stop', async () => {
    await folder.write('main', { alias: 'main', shade: 7 })
    line.failNext({ method: 'POST', path: '/v2/bot/richmenu/alias', status: 500 })
    await failure(() => deployRichMenus(deps, { dir: folder.dir }))

    await deployRichMenus(deps, { dir: folder.dir })
    const [row] = await rows()
    const uploads = line.requestsTo('POST', `/v2/bot/richmenu/${row?.line_rich_menu_id}/content`)
    expect(uploads.map((r) => r.status)).toEqual([200, 400])
    expect(creates()).toHaveLength(1)
    expect(row?.deployed_at).not.toBeNull()
    expect(lineState(line).aliases).toEqual({ main: row?.line_rich_menu_id })
  })

  it('stops at a 429 with a clear message and carries on from there on the next run', async () => {
    await folder.write('a-menu', { shade: 1 })
    await folder.write('b-menu', { shade: 2 })
    // The second create hits LINE's 100-an-hour limit.
    line.setRateLimit('POST /v2/bot/richmenu', { capacity: 1, perMs: 3_600_000 })
    const error = await failure(() => deployRichMenus(deps, { dir: folder.dir }))
    expect(error).toBeInstanceOf(AppError)
    expect((error as AppError).code).toBe('TOO_MANY_REQUESTS')
    expect((error as AppError).message).toMatch(/rate limit stopped the deploy at "create b-menu"/)
    // a-menu is made at LINE but not live: menus go live together, once every one is made.
    const stopped = await rows()
    expect(
      stopped.map((r) => [r.name, r.line_rich_menu_id !== null, r.deployed_at !== null]),
    ).toEqual([
      ['a-menu', true, false],
      ['b-menu', false, false],
    ])

    line.setRateLimit('POST /v2/bot/richmenu', null)
    line.clearRequests()
    const summary = await deployRichMenus(deps, { dir: folder.dir })
    expect(summary).toMatchObject({ created: ['a-menu', 'b-menu'], unchanged: [] })
    expect(creates().filter((r) => r.status === 200)).toHaveLength(1)
  })

  it('says why a deploy stopped even when queuing the re-link fails too (Redis down)', async () => {
    await folder.write('a-menu', { shade: 5 })
    await folder.write('b-menu', { shade: 6 })
    line.setRateLimit('POST /v2/bot/richmenu', { capacity: 1, perMs: 3_600_000 })
    const afterChange = async () => {
      throw new Error('Connection is closed.')
    }
    const error = await failure(() => deployRichMenus(deps, { dir: folder.dir, afterChange }))
    expect((error as AppError).code).toBe('TOO_MANY_REQUESTS')
    line.setRateLimit('POST /v2/bot/richmenu', null)
  })

  it('creates each menu once when two deploys run at once', () => expectTwoDeploysCreateOnce(world))

  it("waits, before any call to LINE, for another process's deploy (the same advisory lock)", async () => {
    await folder.write('main', { alias: 'main', shade: 3 })
    const summary = await deps.db.connection().execute(async (other) => {
      // The lock a deploy of another Kizuna process holds, as every version names it.
      const lock = sql`hashtextextended('kizuna.richmenu-deploy', 7)`
      await sql`select pg_advisory_lock(${lock})`.execute(other)
      const deploy = deployRichMenus(deps, { dir: folder.dir })
      await lockWaitOn(deps.db, 'pg_advisory_lock')
      expect(line.requests).toEqual([])
      await sql`select pg_advisory_unlock(${lock})`.execute(other)
      return deploy
    })
    expect(summary.created).toEqual(['main'])
    expect(creates()).toHaveLength(1)
  })

  it('refuses a folder with problems before any call, and writes nothing', async () => {
    await folder.write('good', { shade: 1 })
    const { richMenu: _dropped, ...withoutRichMenu } = menuJson('bad')
    await folder.writeRaw('bad', withoutRichMenu)
    const error = await failure(() => deployRichMenus(deps, { dir: folder.dir }))

    expect(error).toBeInstanceOf(AppError)
    expect((error as AppError).code).toBe('UNPROCESSABLE')
    expect((error as AppError).details).toEqual([
      expect.objectContaining({
        file: expect.stringMatching(/bad\/menu\.json$/),
        field: 'richMenu',
      }),
    ])
    expect(line.requests).toEqual([])
    expect(await rows()).toEqual([])
  })

  it('refuses a folder that does not exist instead of retiring every menu', async () => {
    await folder.write('main', { shade: 1 })
    await deployRichMenus(deps, { dir: folder.dir })
    line.clearRequests()
    const error = await failure(() => deployRichMenus(deps, { dir: `${folder.dir}-typo` }))
    expect((error as AppError).code).toBe('NOT_FOUND')
    expect(line.requests).toEqual([])
    expect((await rows()).map((r) => r.retired_at)).toEqual([null])
  })

  it('refuses a folder with no menus (an empty bind mount) instead of retiring every menu', async () => {
    await folder.write('main', { alias: 'main', default: true, shade: 1 })
    await deployRichMenus(deps, { dir: folder.dir })
    const before = lineState(line)
    await folder.remove('main')
    // A file beside the menus is no menu.
    await writeFile(join(folder.dir, 'README.md'), '# menus\n')
    line.clearRequests()
    const error = await failure(() => deployRichMenus(deps, { dir: folder.dir, checkLine: true }))
    expect(error).toBeInstanceOf(AppError)
    expect((error as AppError).code).toBe('NOT_FOUND')
    expect((error as AppError).message).toBe(
      `no menus in ${folder.dir}: a deploy of none would retire every menu and unlink every ` +
        'friend; nothing was sent to LINE (`kizuna richmenu deploy --remove-all` removes them)',
    )
    expect(line.requests).toEqual([])
    expect((await rows()).map((r) => r.retired_at)).toEqual([null])
    expect(lineState(line)).toEqual(before)

    // Said on purpose: every menu goes.
    const summary = await deployRichMenus(deps, { dir: folder.dir, removeAll: true })
    expect(summary).toMatchObject({ created: [], retired: ['main'], deleted: ['main'] })
    expect(lineState(line)).toEqual({ menus: [], aliases: {}, defaultRichMenuId: undefined })
  })

  it('refuses removeAll for a folder that has menus', async () => {
    await folder.write('main', { shade: 1 })
    const error = await failure(() => deployRichMenus(deps, { dir: folder.dir, removeAll: true }))
    expect((error as AppError).code).toBe('BAD_REQUEST')
    expect((error as AppError).message).toBe(
      `--remove-all is for a folder with no menus; ${folder.dir} has 1 (main): ` +
        'nothing was sent to LINE',
    )
    expect(line.requests).toEqual([])
    expect(await rows()).toEqual([])
  })

  it('with checkLine, creates again the menus LINE no longer has', async () => {
    await folder.write('main', { alias: 'main', default: true, shade: 8 })
    await deployRichMenus(deps, { dir: folder.dir })
    const [before] = await rows()
    // A fresh sandbox (a restart) or a menu deleted in the Official Account Manager.
    const { state } = line.context
    state.richMenus.clear()
    state.aliases.clear()
    state.defaultRichMenuId = undefined

    const summary = await deployRichMenus(deps, { dir: folder.dir, checkLine: true })
    expect(summary.created).toEqual(['main'])
    const [after] = await rows()
    expect(after?.id).toBe(before?.id)
    expect(after?.line_rich_menu_id).not.toBe(before?.line_rich_menu_id)
    expect(lineState(line)).toEqual({
      menus: [after?.line_rich_menu_id],
      aliases: { main: after?.line_rich_menu_id },
      defaultRichMenuId: after?.line_rich_menu_id,
    })

    line.clearRequests()
    await deployRichMenus(deps, { dir: folder.dir, checkLine: true })
    expect(line.requests.map((r) => `${r.method} ${r.path}`)).toEqual(['GET /v2/bot/richmenu/list'])
  })
})
