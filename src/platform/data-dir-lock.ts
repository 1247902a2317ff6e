import { open, readFile, unlink } from 'node:fs/promises'
import { join } from 'node:path'

/**
 * One process at a time on an embedded database: PGlite lets several open the same folder, and
 * two writers (`npm start` and a `kizuna` command beside it) corrupted it (an index and its table
 * disagreeing, rows lost). The lock file holds the owner's pid; a lock whose process is gone (a
 * crash) is taken over. Returns the release.
 */
export async function lockDataDir(dir: string): Promise<() => Promise<void>> {
  const path = join(dir, 'kizuna.lock')
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const file = await open(path, 'wx')
      await file.writeFile(String(process.pid))
      await file.close()
      return async () => {
        if ((await readFile(path, 'utf8').catch(() => '')) === String(process.pid)) {
          await unlink(path).catch(() => {})
        }
      }
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error
    }
    const owner = Number(await readFile(path, 'utf8').catch(() => ''))
    if (owner > 0 && owner !== process.pid && isRunning(owner)) {
      throw new Error(
        `the embedded database in ${dir} is in use by process ${owner} (Kizuna running?): ` +
          'stop it first, or set DATABASE_URL to a PostgreSQL server that both can use',
      )
    }
    await unlink(path).catch(() => {}) // left by a process that is gone
  }
  throw new Error(`could not lock the embedded database in ${dir}`)
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}
