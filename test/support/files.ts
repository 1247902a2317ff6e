import { randomUUID } from 'node:crypto'
import { mkdtemp, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

/** Writes throw-away input files (CSV, NDJSON) for CLI tests under one temp folder. */
export async function tempFiles(prefix: string) {
  const dir = await mkdtemp(join(tmpdir(), `kizuna-${prefix}-`))
  return async (ext: string, lines: string[]): Promise<string> => {
    const path = join(dir, `${randomUUID()}.${ext}`)
    await writeFile(path, `${lines.join('\n')}\n`)
    return path
  }
}
