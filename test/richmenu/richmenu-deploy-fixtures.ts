import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { crc32, deflateSync } from 'node:zlib'
import { afterEach, beforeEach, expect } from 'vitest'
import type { Deps } from '../../src/platform/deps.ts'
import { deployRichMenus } from '../../src/richmenu/richmenu-deploy.service.ts'
import type { LinePlatform } from '../../src/sandbox/platform.ts'
import { TEST_CHANNEL_TOKEN } from '../support/harness.ts'
import { expectNoRejectedRequests } from '../support/line.ts'
import { startPrivateDeps } from '../support/private-deps.ts'

export const WIDTH = 800
export const HEIGHT = 270

/** A grey PNG of the given size: `shade` makes images that differ. */
export function png(shade: number, width = WIDTH, height = HEIGHT): Buffer {
  const chunk = (type: string, data: Buffer) => {
    const head = Buffer.alloc(4)
    head.writeUInt32BE(data.length)
    const body = Buffer.concat([Buffer.from(type, 'ascii'), data])
    const crc = Buffer.alloc(4)
    crc.writeUInt32BE(crc32(body))
    return Buffer.concat([head, body, crc])
  }
  const ihdr = Buffer.alloc(13)
  ihdr.writeUInt32BE(width, 0)
  ihdr.writeUInt32BE(height, 4)
  ihdr[8] = 8 // bit depth
  ihdr[9] = 0 // greyscale
  const row = Buffer.alloc(width + 1, shade)
  row[0] = 0 // filter: none
  const raw = Buffer.concat(Array.from({ length: height }, () => row))
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', deflateSync(raw)),
    chunk('IEND', Buffer.alloc(0)),
  ])
}

export type MenuSeed = {
  alias?: string
  default?: boolean
  segments?: string[]
  /** Taps switch to this alias (a tab). */
  switchTo?: string
  shade?: number
}

export function menuJson(name: string, seed: MenuSeed = {}) {
  const action = seed.switchTo
    ? { type: 'richmenuswitch', richMenuAliasId: seed.switchTo, data: `tab=${seed.switchTo}` }
    : { type: 'postback', data: `menu=${name}` }
  return {
    segments: seed.segments ?? [],
    ...(seed.alias ? { alias: seed.alias } : {}),
    default: seed.default ?? false,
    richMenu: {
      size: { width: WIDTH, height: HEIGHT },
      selected: false,
      name,
      chatBarText: 'Menu',
      areas: [{ bounds: { x: 0, y: 0, width: WIDTH, height: HEIGHT }, action }],
    },
  }
}

/** A throw-away richmenus/ folder. */
export async function menusFolder() {
  const dir = await mkdtemp(join(tmpdir(), 'kizuna-richmenus-'))
  return {
    dir,
    async write(name: string, seed: MenuSeed = {}) {
      await mkdir(join(dir, name), { recursive: true })
      await writeFile(join(dir, name, 'menu.json'), JSON.stringify(menuJson(name, seed), null, 2))
      await writeFile(join(dir, name, 'image.png'), png(seed.shade ?? 200))
    },
    async writeRaw(name: string, json: unknown) {
      await mkdir(join(dir, name), { recursive: true })
      await writeFile(join(dir, name, 'menu.json'), JSON.stringify(json))
      await writeFile(join(dir, name, 'image.png'), png(1))
    },
    remove: (name: string) => rm(join(dir, name), { recursive: true }),
    drop: () => rm(dir, { recursive: true, force: true }),
  }
}

export type MenusFolder = Awaited<ReturnType<typeof menusFolder>>
export type DeployWorld = { deps: Deps; line: LinePlatform; folder: MenusFolder }

/**
 * Registers the hooks of a deploy test: for each test its own database, Redis prefix and LINE
 * stand-in (startPrivateDeps) and a throw-away richmenus/ folder, all gone after it. Read the
 * fields in a test or a later beforeEach (they change for every test).
 */
export function useDeployWorld(envOverrides: Record<string, string> = {}): DeployWorld {
  const world = {} as DeployWorld
  let cleanups: (() => Promise<void>)[] = []
  beforeEach(async () => {
    cleanups = []
    const { deps, line } = await startPrivateDeps(cleanups, envOverrides)
    const folder = await menusFolder()
    cleanups.push(() => folder.drop())
    Object.assign(world, { deps, line, folder })
  })
  afterEach(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup()
  })
  return world
}

/** The image LINE stores for a menu, read back over HTTP from the data host. */
export async function downloadImage(line: LinePlatform, richMenuId: string): Promise<Buffer> {
  const res = await fetch(`${line.dataApiBaseUrl}/v2/bot/richmenu/${richMenuId}/content`, {
    headers: { authorization: `Bearer ${TEST_CHANNEL_TOKEN}` },
  })
  if (!res.ok) throw new Error(`download ${richMenuId}: ${res.status}`)
  return Buffer.from(await res.arrayBuffer())
}

/** What the stand-in holds: menu ids, aliases and the default. */
export function lineState(line: LinePlatform) {
  const { state } = line.context
  return {
    menus: [...state.richMenus.keys()],
    aliases: Object.fromEntries(state.aliases),
    defaultRichMenuId: state.defaultRichMenuId,
  }
}

/** Two deploys of two new menus started at once: one creates both, the other finds them done. */
export async function expectTwoDeploysCreateOnce({ deps, line, folder }: DeployWorld) {
  await folder.write('main', { alias: 'main', default: true, shade: 3 })
  await folder.write('vip', { alias: 'vip', shade: 4 })
  const [one, two] = await Promise.all([
    deployRichMenus(deps, { dir: folder.dir }),
    deployRichMenus(deps, { dir: folder.dir }),
  ])
  expect([one.created, two.created].sort()).toEqual([[], ['main', 'vip']])
  expect(line.requestsTo('POST', '/v2/bot/richmenu')).toHaveLength(2)
  expect(lineState(line).menus).toHaveLength(2)
  expectNoRejectedRequests(line)
}
