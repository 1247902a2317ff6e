import { cp, mkdir, mkdtemp, readdir, rm, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, describe, expect, it } from 'vitest'
import { cli } from '../support/cli.ts'

/** Where `npm start` runs (npm runs scripts in the package folder). */
const projectRoot = fileURLToPath(new URL('../../', import.meta.url))

const dirs: string[] = []
afterAll(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true })
})

describe('the embedded database folder', () => {
  it("is the Kizuna folder's .data by default, wherever the command runs", async () => {
    // A copy of Kizuna, so its .data is this test's: a Kizuna running from it holds that folder
    // (the lock file names this process). A command run elsewhere must find it in use, not make
    // a database of its own where it runs.
    const root = await mkdtemp(join(tmpdir(), 'kizuna-root-'))
    const elsewhere = await mkdtemp(join(tmpdir(), 'kizuna-cwd-'))
    dirs.push(root, elsewhere)
    for (const part of ['src', 'package.json']) {
      await cp(join(projectRoot, part), join(root, part), { recursive: true })
    }
    await symlink(join(projectRoot, 'node_modules'), join(root, 'node_modules'), 'dir')
    await mkdir(join(root, '.data'))
    await writeFile(join(root, '.data', 'kizuna.lock'), String(process.pid))

    for (const cwd of [elsewhere, join(root, 'src', 'cli')]) {
      const listed = await cli(
        ['stores', 'list'],
        { DATABASE_URL: '', DATA_DIR: undefined },
        { cwd, script: join(root, 'src', 'cli', 'kizuna.ts'), timeoutMs: 30_000 },
      )
      expect(listed.stderr).toContain(`database in ${join(root, '.data')} is in use`)
      expect(listed.code).toBe(1)
    }
    expect(await readdir(elsewhere)).toEqual([])
    expect(await readdir(join(root, 'src', 'cli'))).not.toContain('.data')
  }, 60_000)

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
