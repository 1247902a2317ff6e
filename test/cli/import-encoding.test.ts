import { randomUUID } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { openRecords } from '../../src/cli/import/read-records.ts'
import { utf8Lines } from '../../src/cli/import/utf8-text.ts'
import { loadEnv } from '../../src/config/env.ts'
import { createDb, type Database } from '../../src/platform/db.ts'
import { cli } from '../support/cli.ts'
import { TEST_DATABASE_URL } from '../support/env.ts'
import { tempFiles } from '../support/files.ts'

let db: Database
beforeAll(async () => {
  db = await createDb(loadEnv({ DATABASE_URL: TEST_DATABASE_URL }))
})
afterAll(async () => {
  await db.destroy()
})

/** 山田太郎 as Shift_JIS writes it (Excel's and many Japanese shop systems' CSV). */
const SHIFT_JIS_NAME = Buffer.from([0x8e, 0x52, 0x93, 0x63, 0x91, 0xbe, 0x98, 0x59])

/** A file of `parts` (text is written as UTF-8, a Buffer as it is). */
async function fileOf(ext: string, parts: (string | Buffer)[]): Promise<string> {
  const file = await tempFiles('encoding')
  const path = await file(ext, [])
  const { writeFile } = await import('node:fs/promises')
  await writeFile(
    path,
    Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p) : p))),
  )
  return path
}

const customersWith = (tag: string) =>
  db
    .selectFrom('identity')
    .select('value')
    .where('kind', '=', 'online_customer')
    .where('value', 'like', `%-${tag}`)
    .execute()

/** The line `utf8Lines` names for `bytes` given in two chunks cut at `at`. */
function badLineCutAt(bytes: Buffer, at: number): number {
  const lines = utf8Lines()
  return lines.take(bytes.subarray(0, at)) || lines.take(bytes.subarray(at)) || lines.end()
}

describe('import files that are not UTF-8', () => {
  it('refuses a Shift_JIS customers file before importing any of it, naming the line', async () => {
    const tag = randomUUID().slice(0, 8)
    const path = await fileOf('csv', [
      'external_id,name\n',
      `A-${tag},Aoi\n`,
      `B-${tag},`,
      SHIFT_JIS_NAME,
      '\n',
      `C-${tag},Chika\n`,
    ])
    const result = await cli(['import', 'customers', path])
    expect(result.code).toBe(1)
    expect(result.stderr).toContain(
      'error: line 3: not UTF-8 text; save the file as UTF-8 (it may be Shift_JIS) and import it again: nothing was imported',
    )
    expect(result.stdout).not.toContain('customers:')
    expect(await customersWith(tag)).toEqual([])
  })

  it('refuses a products or orders file that is not UTF-8 the same way', async () => {
    const tag = randomUUID().slice(0, 8)
    const products = await fileOf('ndjson', [
      `{"sku":"A-${tag}","name":"A","price":100}\n`,
      `{"sku":"B-${tag}","name":"`,
      SHIFT_JIS_NAME,
      '","price":100}\n',
    ])
    const orders = await fileOf('csv', [
      'source,order_id,ordered_at,sku,name,quantity,unit_price,total\n',
      `shop,O-${tag},2026-11-01T10:00:00+09:00,SOFA-1,`,
      SHIFT_JIS_NAME,
      ',1,1000,1000\n',
    ])
    for (const [kind, path, line] of [
      ['products', products, 2],
      ['orders', orders, 2],
    ] as const) {
      const result = await cli(['import', kind, path])
      expect(result.code).toBe(1)
      expect(result.stderr).toContain(`error: line ${line}: not UTF-8 text`)
    }
    const saved = await db
      .selectFrom('product')
      .select('sku')
      .where('sku', '=', `A-${tag}`)
      .execute()
    expect(saved).toEqual([])
  })

  it('stops reading at the first line that is not UTF-8 when the file was not checked first', async () => {
    const path = await fileOf('csv', ['external_id,name\n', 'A,Aoi\n', 'B,', SHIFT_JIS_NAME, '\n'])
    const read = async () => {
      const names: unknown[] = []
      for await (const items of (await openRecords(path, 'csv')).records) {
        names.push(...items.map((item) => item.record?.name))
      }
      return names
    }
    await expect(read()).rejects.toThrow('line 3: not UTF-8 text')
  })

  it('names the line of bytes that are not UTF-8 wherever the file is cut into chunks', () => {
    const good = Buffer.from('external_id,name\nA,山田太郎\nB,é😀\n')
    const bad = Buffer.concat([good, Buffer.from('C,'), SHIFT_JIS_NAME, Buffer.from('\nD,x\n')])
    const truncated = good.subarray(0, good.indexOf('😀') + 2)
    for (let at = 0; at <= bad.length; at++) {
      if (at <= good.length) expect(badLineCutAt(good, at)).toBe(0)
      expect(badLineCutAt(bad, at)).toBe(4)
      if (at <= truncated.length) expect(badLineCutAt(truncated, at)).toBe(3)
    }
  })
})
