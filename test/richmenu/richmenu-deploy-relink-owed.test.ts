import { beforeEach, describe, expect, it } from 'vitest'
import type { Deps } from '../../src/platform/deps.ts'
import { createDeployRichMenus } from '../../src/richmenu/richmenu.jobs.ts'
import { deployRichMenus } from '../../src/richmenu/richmenu-deploy.service.ts'
import { relinkRichMenus } from '../../src/richmenu/richmenu-relink.service.ts'
import type { LinePlatform } from '../../src/sandbox/platform.ts'
import { type MenusFolder, useDeployWorld } from './richmenu-deploy-fixtures.ts'
import { insertFriend } from './richmenu-link-fixtures.ts'

const world = useDeployWorld()
let deps: Deps
let line: LinePlatform
let folder: MenusFolder
beforeEach(() => {
  ;({ deps, line, folder } = world)
})

const redisTimeout = async () => {
  throw new Error('Command timed out')
}

describe('deployRichMenus, a relink that could not be queued', () => {
  it('is queued by the next deploy, though that one finds everything unchanged', async () => {
    await folder.write('welcome', { segments: ['new_friend'], shade: 1 })
    await expect(
      deployRichMenus(deps, { dir: folder.dir, afterChange: redisTimeout }),
    ).rejects.toThrow(/timed out/)

    // The retried job (or the next start) finds the menu live and unchanged: the relink the
    // deploy owed is queued all the same.
    const queued: boolean[] = []
    const afterChange = async () => void queued.push(true)
    const again = await deployRichMenus(deps, { dir: folder.dir, afterChange })
    expect(again).toMatchObject({ created: [], unchanged: ['welcome'], changed: false })
    expect(queued).toEqual([true])

    // Queued is not done: until a relink has run, every deploy queues it again.
    await deployRichMenus(deps, { dir: folder.dir, afterChange })
    expect(queued).toEqual([true, true])

    // Once a relink ran, nothing is owed.
    const user = line.users.create()
    user.friendship = 'friend'
    await insertFriend(deps, { lineUid: user.userId })
    await relinkRichMenus(deps)
    expect(line.richMenuOf(user.userId)).toBeDefined()
    await deployRichMenus(deps, { dir: folder.dir, afterChange })
    expect(queued).toEqual([true, true])
  })

  it('is queued when the job is retried after the queueing failed', async () => {
    await folder.write('welcome', { segments: ['new_friend'], shade: 2 })
    const tries: string[] = []
    const processor = createDeployRichMenus({
      dir: folder.dir,
      afterChange: async () => {
        tries.push('relink')
        if (tries.length === 1) throw new Error('Command timed out')
      },
    })
    const ctx = {} as Parameters<typeof processor.run>[2]
    // The job fails (BullMQ retries it), then its retry finds nothing to deploy.
    await expect(processor.run(deps, {}, ctx)).rejects.toThrow(/timed out/)
    await processor.run(deps, {}, ctx)
    expect(tries).toEqual(['relink', 'relink'])
  })

  it('stays owed when a deploy changes menus while a relink is under way', async () => {
    await folder.write('welcome', { segments: ['new_friend'], shade: 3 })
    await deployRichMenus(deps, { dir: folder.dir })
    const user = line.users.create()
    user.friendship = 'friend'
    await insertFriend(deps, { lineUid: user.userId })
    // The relink reads what is owed, then a deploy changes the menu before it ends.
    const held = line.holdNext({
      method: 'POST',
      path: /^\/v2\/bot\/user\/[^/]+\/richmenu\/[^/]+$/,
    })
    const relinking = relinkRichMenus(deps)
    await held.arrived
    await folder.write('welcome', { segments: ['new_friend'], shade: 4 })
    await deployRichMenus(deps, { dir: folder.dir })
    held.release()
    // Its call reached the menu the deploy retired and deleted (404): the job is retried.
    await expect(relinking).rejects.toMatchObject({ status: 404 })

    const queued: boolean[] = []
    await deployRichMenus(deps, {
      dir: folder.dir,
      afterChange: async () => void queued.push(true),
    })
    expect(queued).toEqual([true])
  })
})
