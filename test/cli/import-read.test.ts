import { once } from 'node:events'
import { PassThrough, Readable } from 'node:stream'
import { describe, expect, it } from 'vitest'
import { type Format, readRecords, type SourceRecord } from '../../src/cli/import/read-records.ts'

/** A file's text, written to the reader piece by piece as the test says. */
function textStream() {
  return new PassThrough({ encoding: 'utf8' })
}

/**
 * Takes the records as an importer does, batch by batch; `whileHolding` runs while the importer
 * still holds a batch (its rows being written), with the lines taken so far.
 */
async function take(
  text: PassThrough,
  format: Format,
  whileHolding: (lines: number[]) => Promise<void> = async () => {},
) {
  const taken: SourceRecord[] = []
  for await (const items of readRecords(text, format).records) {
    taken.push(...items)
    await whileHolding(taken.map((item) => item.line))
  }
  return taken
}

/** The records of a whole CSV file's text. */
function readCsv(content: string) {
  const text = textStream()
  text.end(content)
  return take(text, 'csv')
}

/**
 * Writes the rest of the file. CSV is parsed ahead of the importer (papaparse pushes its rows):
 * this waits until the stream has ended, which papaparse hears first, so it has parsed every row
 * by then. NDJSON is read only as the importer asks (it would wait for good): a turn of the event
 * loop lets it read what it may.
 */
async function endWith(text: PassThrough, format: Format, rest: string) {
  const ended = format === 'csv' ? once(text, 'end') : new Promise(setImmediate)
  text.end(rest)
  await ended
}

describe('import file reading', () => {
  // 300 rows, then 2 more once the importer holds a batch: for CSV the one handed over when the
  // parsed rows ran out (its last row is the last one written), for NDJSON (which hands over
  // 256 at a time, or at the end) the first.
  for (const [format, header, row] of [
    ['csv', 'external_id,name\n', (i: number) => `A${i},x\n`],
    ['ndjson', '', (i: number) => `{"sku":"A${i}"}\n`],
  ] as const) {
    it(`hands over the ${format} rows read to the end while the importer held the ones before`, async () => {
      const text = textStream()
      const offset = format === 'csv' ? 1 : 0
      text.write(header + Array.from({ length: 300 }, (_, i) => row(i)).join(''))
      let ended = false
      const taken = await take(text, format, async (lines) => {
        if (ended || (format === 'csv' && lines.at(-1) !== 300 + offset)) return
        ended = true
        await endWith(text, format, row(300) + row(301))
      })
      expect(ended).toBe(true)
      expect(taken.map((item) => item.line)).toEqual(
        Array.from({ length: 302 }, (_, i) => i + 1 + offset),
      )
      expect(taken.every((item) => item.error === undefined)).toBe(true)
    })
  }

  it('reports a CSV quote never closed at the line it opened on, and how far it read', async () => {
    const taken = await readCsv('a,b,c\n1,"p\nq","r\n4,5,6\n7,8,9\n')
    expect(taken).toEqual([
      {
        line: 3,
        error:
          '(row): the quote that opens a cell on this line is never closed, so the file to its end ' +
          '(line 5) was read as that cell: close it (a quote inside a cell is written "")',
      },
    ])
  })

  it('reports a CSV row a stray quote ran across lines at the line it starts on, naming the lines taken in', async () => {
    // `"Taro" Yamada`: papaparse reads on past the quote after Taro, to the next quote that ends
    // a cell (after Saburo), so lines 2-4 are one row.
    const taken = await readCsv(
      'external_id,name,email\n' +
        'A1,"Taro" Yamada,a@x.com\nA2,Jiro,b@x.com\nA3,"Saburo",c@x.com\nA4,Shiro,d@x.com\n',
    )
    expect(taken).toEqual([
      {
        line: 2,
        error:
          '(row): lines 2–4 were read as one row: a quoted cell on line 2 has text after its ' +
          'closing quote ("a" b): put the whole cell in quotes, a quote inside it written ""',
      },
      { line: 5, record: { external_id: 'A4', name: 'Shiro', email: 'd@x.com' } },
    ])
  })

  it('reports a CSV stray quote that no later quote ends at its line, and how far it read', async () => {
    const taken = await readCsv('external_id,name\nA1,"Taro" Yamada\nA2,Jiro\nA3,Saburo\n')
    expect(taken).toEqual([
      {
        line: 2,
        error:
          '(row): a quoted cell on this line has text after its closing quote ("a" b), so the ' +
          'file to its end (line 4) was read as that cell: put the whole cell in quotes, a quote ' +
          'inside it written ""',
      },
    ])
  })

  it('reports a CSV stray quote inside one line at that line', async () => {
    const taken = await readCsv('external_id,name\nA1,"Taro" Yamada"\nA2,Jiro\n')
    expect(taken).toEqual([
      {
        line: 2,
        error:
          '(row): a quoted cell has text after its closing quote ("a" b): put the whole cell in ' +
          'quotes, a quote inside it written ""',
        // The cells before the quoted one, as written: which order such a row is part of.
        partial: { external_id: 'A1' },
      },
      { line: 3, record: { external_id: 'A2', name: 'Jiro' } },
    ])
  })

  it("skips CSV rows of empty cells only (a spreadsheet's empty rows), as blank lines", async () => {
    const taken = await readCsv('a,b\n1,2\n,\n , \n"",""\n3,4\n,,,\n\n')
    expect(taken).toEqual([
      { line: 2, record: { a: '1', b: '2' } },
      { line: 6, record: { a: '3', b: '4' } },
    ])
  })

  it('refuses a CSV file whose header cannot be read, rather than taking the next row for it', async () => {
    await expect(readCsv('"external_id" x",name\nA1,Taro\n')).rejects.toThrow(
      'FILE: line 1: the header cannot be read: a quoted cell has text after its closing quote',
    )
  })

  it('ends an NDJSON line at \\n, \\r\\n or a lone \\r (old Mac files), one cut between two chunks too', async () => {
    // One chunk each (as a file's decoded text comes): lines 1-2 end in \r\n, the second cut
    // between its \r and \n; 3-4 in a lone \r (the fourth's at a chunk's end, the next chunk
    // starting the fifth line); 5 in \n; 6 in nothing.
    const chunks = [
      '{"sku":"A1"}\r\n{"sku":"A2"}\r',
      '\n{"sku":"A3"}\r{"sku":"A4"}\r',
      '{"sku":"A5"}\n',
      '{"sku":"A6"}',
    ]
    const taken: SourceRecord[] = []
    for await (const items of readRecords(Readable.from(chunks), 'ndjson').records) {
      taken.push(...items)
    }
    expect(taken).toEqual([1, 2, 3, 4, 5, 6].map((line) => ({ line, record: { sku: `A${line}` } })))
  })

  it('skips an NDJSON line longer than POST /api/orders takes (256 KB), naming it, and reads on', async () => {
    const text = textStream()
    const object = (name: string) => `{"sku":"A","name":"${name}"}\n`
    // 'あ' is 3 bytes: 80,000 make 240 KB, 90,000 make 270 KB (in 90,000 characters).
    text.write(object('first') + object('あ'.repeat(80_000)) + object('あ'.repeat(90_000)))
    // A line longer than any chunk: a file with no newline comes in piece by piece.
    for (let i = 0; i < 40; i++) text.write(`{"sku":"${'x'.repeat(10_000)}`)
    text.end(`"}\n${object('last')}`)
    const taken = await take(text, 'ndjson')
    const tooLong =
      '(row): longer than 256 KB, which POST /api/orders takes at most: is each object on a line of its own?'
    expect(taken.map(({ line, error }) => ({ line, error }))).toEqual([
      { line: 1, error: undefined },
      { line: 2, error: undefined },
      { line: 3, error: tooLong },
      { line: 4, error: tooLong },
      { line: 5, error: undefined },
    ])
    expect(taken[4]?.record).toEqual({ sku: 'A', name: 'last' })
  })
})
