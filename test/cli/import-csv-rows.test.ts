import { randomUUID } from 'node:crypto'
import { Readable } from 'node:stream'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { csvRows } from '../../src/cli/import/csv-rows.ts'
import { readRecords } from '../../src/cli/import/read-records.ts'
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

/** What `csvRows` answers for `bytes` given in two chunks cut at `at` (the whole: at 0). */
function problemCutAt(bytes: Buffer, at = 0): string | null {
  const rows = csvRows()
  return rows.take(bytes.subarray(0, at)) ?? rows.take(bytes.subarray(at)) ?? rows.end()
}

/** The lines papaparse (csvRecords) reports a quote problem on, reading the same text. */
async function quoteErrorLines(text: string): Promise<number[]> {
  const lines: number[] = []
  for await (const items of readRecords(Readable.from([text]), 'csv').records) {
    for (const item of items) if (item.error?.includes('quote')) lines.push(item.line)
  }
  return lines
}

const NEVER_CLOSED = 'the quote that opens a cell on this line is never closed'
const STRAY = 'a quoted cell on this line has text after its closing quote ("a" b)'

describe('CSV rows checked before an import', () => {
  it('takes the quoting papaparse reads as rows, wherever the file is cut into chunks', async () => {
    // Each with the lines papaparse reports a quote problem on (as a row's, not the file's).
    const readable: [string, number[]][] = [
      ['a,b\n1,2\n', []],
      ['a,b\n"x ""quoted"" y","multi\nline"\n"3",4', []],
      // Whitespace between a closing quote and the comma or line end, U+3000 and U+00A0 too.
      ['a,b\n"x" ,"y"  \n"x"\u3000,"y"\u00a0\n', []],
      // A quote inside an unquoted cell, or after a space, is text.
      ['a,b\nx"y,z\n a, "b\n', []],
      // Windows and old Mac line ends; a byte-order mark before a quoted column name.
      ['a,b\r\n"1","2"\r\n', []],
      ['a,b\r"1","2"\r"3","4"', []],
      ['\ufeff"a",b\n1,2\n', []],
      // A stray quote inside one line: that row only is reported (by the reader).
      ['a,b\n"x" y",2\n3,4\n', [2]],
    ]
    for (const [text, lines] of readable) {
      const bytes = Buffer.from(text)
      for (let at = 0; at <= bytes.length; at++) expect(problemCutAt(bytes, at), text).toBeNull()
      expect(await quoteErrorLines(text), text).toEqual(lines)
    }
  })

  it('refuses a quote never closed, or a stray one taking in line ends, naming the line papaparse reports', async () => {
    const refused = [
      {
        text: 'external_id,name\nA1,"Taro\nA2,Jiro\nA3,Saburo\n',
        line: 2,
        problem: `line 2: ${NEVER_CLOSED}, so the file to its end (line 4) would be read as that cell`,
      },
      {
        text: 'a,b\n1,"p\nq","r\n4,5',
        line: 3,
        problem: `line 3: ${NEVER_CLOSED}, so the file to its end (line 4) would be read as that cell`,
      },
      {
        text:
          'external_id,name,email\nA1,"Taro" Yamada,a@x.com\nA2,Jiro,b@x.com\n' +
          'A3,"Saburo",c@x.com\nA4,Shiro,d@x.com\n',
        line: 2,
        problem: `line 2: ${STRAY}, so lines 2–4 would be read as that one cell`,
      },
      {
        text: 'external_id,name\nA1,"Taro" Yamada\nA2,Jiro\n',
        line: 2,
        problem: `line 2: ${STRAY}, so the file to its end (line 3) would be read as that cell`,
      },
    ]
    for (const { text, line, problem } of refused) {
      const bytes = Buffer.from(text)
      for (let at = 0; at <= bytes.length; at++) {
        expect(problemCutAt(bytes, at), text).toContain(problem)
      }
      expect(await quoteErrorLines(text), text).toEqual([line])
    }
  })

  it('refuses a row longer than 256 KB as soon as it has read that much', () => {
    const rows = csvRows()
    expect(rows.take(Buffer.from('a,b\n1,2\n'))).toBeNull()
    expect(rows.take(Buffer.from(`3,${'x'.repeat(200 * 1024)}`))).toBeNull()
    expect(rows.take(Buffer.from('x'.repeat(100 * 1024)))).toBe(
      'line 3: a row longer than 256 KB, the most a row may hold: is it CSV, a row on each line?',
    )
    const open = csvRows()
    expect(open.take(Buffer.from(`a,b\n1,"${'x\n'.repeat(200 * 1024)}`))).toBe(
      'line 2: the quote that opens a cell on this line is not closed within 256 KB (line 204802), ' +
        'the most a row may hold: close it (a quote inside a cell is written "")',
    )
  })

  it('refuses a customers or orders file with a quote never closed before writing anything', async () => {
    const file = await tempFiles('csv-rows')
    const tag = randomUUID().slice(0, 8)
    // Past 256 KB after the quote: refused there, the file's end never read.
    const rows = Array.from({ length: 20_000 }, (_, i) => `B${i}-${tag},Name ${i}`)
    const long = await file('csv', ['external_id,name', `A-${tag},"Taro`, ...rows])
    const short = await file('csv', ['external_id,name', `A-${tag},"Taro`, `B-${tag},Jiro`])
    const stray = await file('csv', [
      'external_id,name,email',
      `A-${tag},"Taro" Yamada,a-${tag}@example.com`,
      `B-${tag},Jiro,b-${tag}@example.com`,
      `C-${tag},"Saburo",c-${tag}@example.com`,
    ])
    const order = `shop-${tag},O-${tag},2026-11-01T10:00:00+09:00,SOFA-1`
    const orders = await file('csv', [
      'source,order_id,ordered_at,sku,name,quantity,unit_price,total',
      `${order},"Sofa" large,1,1000,1000`,
      `${order},Cushion,1,1000,1000`,
      `${order},"Lamp",1,1000,1000`,
    ])
    for (const [kind, path, message] of [
      [
        'customers',
        long,
        `line 2: the quote that opens a cell on this line is not closed within 256 KB`,
      ],
      ['customers', short, `line 2: ${NEVER_CLOSED}, so the file to its end (line 3)`],
      ['customers', stray, `line 2: ${STRAY}, so lines 2–4 would be read as that one cell`],
      ['orders', orders, `line 2: ${STRAY}, so lines 2–4 would be read as that one cell`],
    ] as const) {
      const result = await cli(['import', kind, path])
      expect(result.code, path).toBe(1)
      expect(result.stderr, path).toContain(`error: ${message}`)
      expect(result.stderr, path).toContain('nothing was imported')
      expect(result.stdout, path).toBe('')
    }
    const saved = await db
      .selectFrom('identity')
      .select('value')
      .where('value', 'like', `%-${tag}%`)
      .execute()
    expect(saved).toEqual([])
    const recorded = await db
      .selectFrom('purchase')
      .select('id')
      .where('source', '=', `shop-${tag}`)
      .execute()
    expect(recorded).toEqual([])
  })
})
