import { randomUUID } from 'node:crypto'
import { writeFile } from 'node:fs/promises'
import { describe, expect, it } from 'vitest'
import { cli } from '../support/cli.ts'
import { tempFiles } from '../support/files.ts'

/**
 * Exit status of `kizuna import`, for scripts: 0 every row imported, 2 the import went through
 * the file but skipped rows (reported on stderr), 1 it stopped or refused the file.
 */
describe('kizuna import exit status', () => {
  it('is 0 when every row was imported and 2 when rows were skipped, for each import', async () => {
    const file = await tempFiles('exit')
    const tag = randomUUID().slice(0, 8)
    const order = (id: string, quantity: number) =>
      `shop-${tag},${id},2026-11-01T10:00:00+09:00,SOFA-1,Sofa,${quantity},1000,${quantity * 1000}`
    const cases = [
      {
        kind: 'customers',
        header: 'external_id,email',
        good: [`A-${tag},a-${tag}@example.com`],
        bad: `B-${tag},not-an-email`,
      },
      {
        kind: 'products',
        header: 'sku,name,price',
        good: [`A-${tag},Sofa,1000`],
        bad: `B-${tag},Sofa,12.5`,
      },
      {
        kind: 'orders',
        header: 'source,order_id,ordered_at,sku,name,quantity,unit_price,total',
        good: [order(`A-${tag}`, 1)],
        bad: order(`B-${tag}`, 0),
      },
    ]
    for (const { kind, header, good, bad } of cases) {
      const all = await cli(['import', kind, await file('csv', [header, ...good])])
      expect(all.stdout, kind).toContain('skipped 0')
      expect(all.code, kind).toBe(0)
      const some = await cli(['import', kind, await file('csv', [header, ...good, bad])])
      expect(some.stdout, kind).toContain('skipped 1')
      expect(some.stderr, kind).toContain('line 3: ')
      expect(some.code, kind).toBe(2)
    }
  })

  it('is 1 when the import refused the file', async () => {
    const file = await tempFiles('exit')
    const result = await cli([
      'import',
      'customers',
      await file('csv', ['external_id,e-mail', 'x,y']),
    ])
    expect(result.stderr).toContain('unknown column "e-mail"')
    expect(result.code).toBe(1)
  })

  it('is 1 for a CSV file without a header line: empty, or blank lines only', async () => {
    const file = await tempFiles('exit')
    const empty = await file('csv', [])
    await writeFile(empty, '')
    const blank = await file('csv', ['', '  ', ''])
    for (const kind of ['customers', 'products', 'orders']) {
      for (const path of [empty, blank]) {
        const result = await cli(['import', kind, path])
        expect(result.stderr, kind).toContain(
          'error: FILE: no header line (the file is empty or blank): a CSV file starts with a line naming its columns',
        )
        expect(result.stdout, kind).toBe('')
        expect(result.code, kind).toBe(1)
      }
    }
  })
})
