import { randomUUID } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { closeDeps, createDeps } from '../../src/main/deps.ts'
import { migrateToLatest } from '../../src/main/migrate.ts'
import type { Deps } from '../../src/platform/deps.ts'
import { deployRichMenus } from '../../src/richmenu/richmenu-deploy.service.ts'
import { type LinePlatform, startLinePlatform } from '../../src/sandbox/platform.ts'
import { TEST_CHANNEL_SECRET, TEST_CHANNEL_TOKEN, testEnv } from '../support/harness.ts'
import {
  expectTwoDeploysCreateOnce,
  lineState,
  type MenusFolder,
  menusFolder,
} from './richmenu-deploy-fixtures.ts'

// The embedded database (no DATABASE_URL): PGlite, one session for the whole process.
let deps: Deps
let line: LinePlatform
let folder: MenusFolder
let cleanups: (() => Promise<void>)[] = []
beforeEach(async () => {
  cleanups = []
  const dataDir = await mkdtemp(join(tmpdir(), 'kizuna-deploy-embedded-'))
  cleanups.push(() => rm(dataDir, { recursive: true, force: true }))
  line = await startLinePlatform({
    channelSecret: TEST_CHANNEL_SECRET,
    channelAccessToken: TEST_CHANNEL_TOKEN,
  })
  cleanups.push(() => line.close())
  const env = testEnv({
    DATABASE_URL: '',
    DATA_DIR: dataDir,
    LINE_API_BASE_URL: line.apiBaseUrl,
    LINE_DATA_API_BASE_URL: line.dataApiBaseUrl,
  })
  deps = await createDeps(env, { queuePrefix: `test-${randomUUID()}` })
  cleanups.push(() => closeDeps(deps))
  await migrateToLatest(deps.db)
  folder = await menusFolder()
  cleanups.push(() => folder.drop())
})
afterEach(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup()
})

const IMAGE_UPLOAD = /^\/v2\/bot\/richmenu\/[^/]+\/content$/

describe('deployRichMenus on the embedded database', () => {
  it('leaves the database to other work while it waits for LINE', async () => {
    await folder.write('main', { alias: 'main', default: true, shade: 3 })
    const upload = line.holdNext({ method: 'POST', path: IMAGE_UPLOAD })
    const order: string[] = []
    const deploy = deployRichMenus(deps, { dir: folder.dir, checkLine: true }).then((s) => {
      order.push('deploy')
      return s
    })
    await upload.arrived
    // Only so that a failure is reported instead of hanging: the query below waited for the
    // whole deploy, which would never end while LINE holds its upload.
    const giveUp = setTimeout(() => {
      order.push('gave up: the query waited for the deploy')
      upload.release()
    }, 5_000)
    // What a webhook insert or a register scan does meanwhile: the create is already recorded.
    const seen = await deps.db
      .selectFrom('richmenu_version')
      .select(['name', 'line_rich_menu_id', 'deployed_at'])
      .execute()
    order.push('query')
    clearTimeout(giveUp)
    upload.release()

    const summary = await deploy
    expect(order).toEqual(['query', 'deploy'])
    expect(seen).toEqual([
      { name: 'main', line_rich_menu_id: expect.stringMatching(/^richmenu-/), deployed_at: null },
    ])
    expect(summary.created).toEqual(['main'])
    const id = seen[0]?.line_rich_menu_id
    expect(lineState(line)).toEqual({ menus: [id], aliases: { main: id }, defaultRichMenuId: id })
  })

  it('creates each menu once when two deploys run at once', () =>
    expectTwoDeploysCreateOnce({ deps, line, folder }))
})
