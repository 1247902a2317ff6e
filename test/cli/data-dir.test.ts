import { mkdir, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, describe, expect, it } from 'vitest'
import { loadEnv } from '../../src/config/env.ts'
import { cli } from '../support/cli.ts'

/** Where `npm start` runs (npm runs scripts in the package folder). */
const projectRoot = fileURLToPath(new URL('../../', import.meta.url))

const dirs: string[] = []
afterAll(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true })
})

describe('the embedded database folder', () => {
  it("is the Kizuna folder's .data by default, wherever the command runs", () => {
    expect(loadEnv({}).DATA_DIR).toBe(join(projectRoot, '.data'))
  })

  it('is the same for `npx kizuna` run from another folder as for `npm start`', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'kizuna-data-'))
    const elsewhere = join(await mkdtemp(join(tmpdir(), 'kizuna-cwd-')), 'a', 'b')
    dirs.push(dataDir, join(elsewhere, '..', '..'))
    await mkdir(elsewhere, { recursive: true })
    // As `npm start` would read it: relative to the Kizuna folder.
    const fromRoot = relative(projectRoot, dataDir)
    expect(resolve(elsewhere, fromRoot)).not.toBe(dataDir)

    const env = { DATABASE_URL: '', DATA_DIR: fromRoot }
    const added = await cli(['stores', 'add', '--code', 'S321', '--name', 'Elsewhere'], env, {
      cwd: elsewhere,
    })
    expect(added).toMatchObject({ code: 0 })
    const listed = await cli(['stores', 'list'], { DATABASE_URL: '', DATA_DIR: dataDir })
    expect(listed.stdout).toContain('S321')
  }, 60_000)
})
