import { execFile } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'
import { cli } from '../support/cli.ts'
import { TEST_DATABASE_URL, TEST_REDIS_URL } from '../support/env.ts'
import { tempFiles } from '../support/files.ts'

const run = promisify(execFile)
const kizuna = fileURLToPath(new URL('../../src/cli/kizuna.ts', import.meta.url))
const quote = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`

/** Orders of one line each, enough of them for the bar to move. */
async function ordersFile(source: string, count: number) {
  const files = await tempFiles('progress')
  const rows = Array.from(
    { length: count },
    (_, i) => `${source},ORD-${i},2026-11-01T10:00:00+09:00,SOFA-1,Sofa,1,1000,1000`,
  )
  return files('csv', ['source,order_id,ordered_at,sku,name,quantity,unit_price,total', ...rows])
}

/**
 * `kizuna import orders` on a terminal: util-linux `script` gives it one (a pseudo-terminal),
 * and records everything it wrote there, stdout and stderr alike.
 */
async function importOnTerminal(file: string): Promise<string> {
  const command = [process.execPath, kizuna, 'import', 'orders', file].map(quote).join(' ')
  const { stdout } = await run('script', ['-qec', command, '/dev/null'], {
    env: {
      ...process.env,
      DATABASE_URL: TEST_DATABASE_URL,
      REDIS_URL: TEST_REDIS_URL,
      LOG_LEVEL: 'silent',
    },
  })
  return stdout
}

describe('kizuna import progress', () => {
  it('draws a progress bar over the file on a terminal, up to 100%, with the rows read', async () => {
    const source = `shop${randomUUID().slice(0, 8)}`
    const output = await importOnTerminal(await ordersFile(source, 3000))
    expect(output).toMatch(/importing \|[^|]*\| \d+% \| \d+ rows/)
    expect(output).toContain('| 100% | 3000 rows |')
    expect(output).toContain('orders: created 0, unmatched 3000, unchanged 0, skipped 0')
  })

  it('draws nothing when stderr is not a terminal (a log file, a pipe)', async () => {
    const source = `shop${randomUUID().slice(0, 8)}`
    const result = await cli(['import', 'orders', await ordersFile(source, 50)])
    expect(result.code).toBe(0)
    expect(result.stderr).not.toContain('importing')
    expect(result.stdout).toContain('unmatched 50')
  })
})
