import { randomUUID } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadEnv } from '../../src/config/env.ts'
import { createDb, type Database } from '../../src/platform/db.ts'
import { cli } from '../support/cli.ts'
import { TEST_DATABASE_URL } from '../support/env.ts'
import { tempFiles } from '../support/files.ts'

let db: Database
let file: Awaited<ReturnType<typeof tempFiles>>
beforeAll(async () => {
  db = await createDb(loadEnv({ DATABASE_URL: TEST_DATABASE_URL }))
  file = await tempFiles('products')
})
afterAll(async () => {
  await db.destroy()
})

const products = (tag: string) =>
  db
    .selectFrom('product')
    .select(['sku', 'name', 'category', 'price', 'image_url', 'related_skus', 'warranty_months'])
    .where('sku', 'like', `%-${tag}`)
    .orderBy('sku')
    .execute()

describe('kizuna import products', () => {
  it('upserts by sku from CSV and NDJSON, and reports bad rows by line and field', async () => {
    const tag = randomUUID().slice(0, 8)
    const csv = await file('csv', [
      'sku,name,category,price,image_url,related_skus,warranty_months',
      `SOFA-${tag},Sofa,sofa,89000,https://img.example.com/sofa.png,ARM-${tag};TABLE-${tag},24`,
      `ARM-${tag},Armchair,chair,39000,,,`,
      `BAD-${tag},Bad,x,12.5,http://img.example.com/bad.png,,`,
    ])
    const first = await cli(['import', 'products', csv])
    expect(first.code).toBe(2) // rows skipped
    expect(first.stdout).toContain('created 2, updated 0, unchanged 0, skipped 1')
    expect(first.stderr).toContain('line 4: price: use whole yen')
    expect(first.stderr).toContain('image_url: use an https:// URL')
    expect(await products(tag)).toEqual([
      {
        sku: `ARM-${tag}`,
        name: 'Armchair',
        category: 'chair',
        price: 39000,
        image_url: null,
        related_skus: [],
        warranty_months: null,
      },
      {
        sku: `SOFA-${tag}`,
        name: 'Sofa',
        category: 'sofa',
        price: 89000,
        image_url: 'https://img.example.com/sofa.png',
        related_skus: [`ARM-${tag}`, `TABLE-${tag}`],
        warranty_months: 24,
      },
    ])

    expect((await cli(['import', 'products', csv])).stdout).toContain(
      'created 0, updated 0, unchanged 2, skipped 1',
    )

    const ndjson = await file('ndjson', [
      JSON.stringify({
        sku: `ARM-${tag}`,
        name: 'Armchair II',
        price: 41000,
        related_skus: [`SOFA-${tag}`],
      }),
      JSON.stringify({
        sku: `PARASOL-${tag}`,
        name: 'Parasol',
        category: 'garden',
        warranty_months: 12,
      }),
      JSON.stringify({ sku: `NONAME-${tag}` }),
      '{not json',
    ])
    const update = await cli(['import', 'products', ndjson])
    expect(update.stdout).toContain('created 1, updated 1, unchanged 0, skipped 2')
    expect(update.stderr).toContain('line 3: name: a product needs a name')
    expect(update.stderr).toContain('line 4: (row): not valid JSON')
    const rows = await products(tag)
    expect(rows.find((p) => p.sku === `ARM-${tag}`)).toMatchObject({
      name: 'Armchair II',
      price: 41000,
      related_skus: [`SOFA-${tag}`],
    })
    expect(rows.map((p) => p.sku)).toContain(`PARASOL-${tag}`)
  })

  it('leaves the columns a file does not have alone, and clears an empty cell of one it has', async () => {
    const tag = randomUUID().slice(0, 8)
    const full = {
      sku: `SOFA-${tag}`,
      name: 'Sofa',
      category: 'sofa',
      price: 89000,
      image_url: 'https://img.example.com/sofa.png',
      related_skus: [`ARM-${tag}`],
      warranty_months: 24,
    }
    const all = await file('csv', [
      'sku,name,category,price,image_url,related_skus,warranty_months',
      `SOFA-${tag},Sofa,sofa,89000,https://img.example.com/sofa.png,ARM-${tag},24`,
    ])
    expect((await cli(['import', 'products', all])).stdout).toContain('created 1')

    // A price list: sku, name and price only.
    const prices = await file('csv', ['sku,name,price', `SOFA-${tag},Sofa,92000`])
    const priced = await cli(['import', 'products', prices])
    expect(priced.stdout).toContain('created 0, updated 1, unchanged 0')
    expect(await products(tag)).toEqual([{ ...full, price: 92000 }])
    expect((await cli(['import', 'products', prices])).stdout).toContain('unchanged 1')

    // An empty cell of a column the file has clears it.
    const cleared = await file('csv', [
      'sku,name,category,related_skus',
      `SOFA-${tag},Sofa,,ARM-${tag}`,
    ])
    expect((await cli(['import', 'products', cleared])).stdout).toContain('updated 1')
    expect(await products(tag)).toEqual([{ ...full, price: 92000, category: null }])

    // NDJSON: a key left out leaves the value alone, null clears it.
    const ndjson = await file('ndjson', [
      JSON.stringify({
        sku: `SOFA-${tag}`,
        name: 'Sofa II',
        warranty_months: null,
        related_skus: null,
      }),
    ])
    expect((await cli(['import', 'products', ndjson])).stdout).toContain('updated 1')
    expect(await products(tag)).toEqual([
      {
        ...full,
        name: 'Sofa II',
        price: 92000,
        category: null,
        warranty_months: null,
        related_skus: [],
      },
    ])
  })

  it('says a name or image URL is too long, not that it is missing or not https', async () => {
    const tag = randomUUID().slice(0, 8)
    const ndjson = await file('ndjson', [
      JSON.stringify({ sku: `LONG-${tag}`, name: 'x'.repeat(301) }),
      JSON.stringify({
        sku: `IMG-${tag}`,
        name: 'Lamp',
        image_url: `https://img.example.com/${'x'.repeat(2000)}.png`,
      }),
    ])
    const result = await cli(['import', 'products', ndjson])
    expect(result.stdout).toContain('skipped 2')
    expect(result.stderr).toContain('line 1: name: at most 300 characters')
    expect(result.stderr).toContain('line 2: image_url: at most 2000 characters')
    expect(await products(tag)).toEqual([])
  })

  it('skips a product whose image URL has a host RFC 3986 refuses, and takes a query the template gets encoded', async () => {
    const tag = randomUUID().slice(0, 8)
    const ndjson = await file('ndjson', [
      JSON.stringify({
        sku: `CURLY-${tag}`,
        name: 'Teapot',
        image_url: 'https://img{1}.example/t.jpg',
      }),
      JSON.stringify({
        sku: `QUERY-${tag}`,
        name: 'Kettle',
        image_url: 'https://img.example/k.jpg?v={1}',
      }),
    ])
    const result = await cli(['import', 'products', ndjson])
    expect(result.stdout).toContain('created 1, updated 0, unchanged 0, skipped 1')
    expect(result.stderr).toContain(
      'line 1: image_url: use an https:// URL whose host is a domain name or an IP address',
    )
    // The follow-up's loader percent-encodes the query (purchase-follow-up.service.ts).
    expect(await products(tag)).toMatchObject([
      { sku: `QUERY-${tag}`, image_url: 'https://img.example/k.jpg?v={1}' },
    ])
  })

  it('skips a product whose name holds a control character, naming the line and the field', async () => {
    const tag = randomUUID().slice(0, 8)
    const ndjson = await file('ndjson', [
      JSON.stringify({ sku: `BELL-${tag}`, name: 'Bell\u0007' }),
      JSON.stringify({ sku: `LAMP-${tag}`, name: 'Lamp' }),
    ])
    const result = await cli(['import', 'products', ndjson])
    expect(result.stdout).toContain('created 1, updated 0, unchanged 0, skipped 1')
    expect(result.stderr).toContain('line 1: name: contains a control character (\\u0007)')
    expect((await products(tag)).map((p) => p.name)).toEqual(['Lamp'])
  })

  it('refuses a CSV file with an unknown column before writing anything, as customers and orders do', async () => {
    const tag = randomUUID().slice(0, 8)
    // A header that is not a product's at all: every row used to be skipped for a missing sku.
    const unrelated = await cli(['import', 'products', await file('csv', ['a,b', '1,2'])])
    expect(unrelated.code).toBe(1)
    expect(unrelated.stderr).toContain(
      'FILE: line 1 is not a header (none of its cells names a column); the columns are sku, name, category, price, image_url, related_skus, warranty_months',
    )
    expect(unrelated.stderr).not.toContain('line 2')
    // A typo in one column: the rows would have been skipped ("colour").
    const typo = await cli([
      'import',
      'products',
      await file('csv', ['sku,name,colour', `TYPO-${tag},Lamp,red`]),
    ])
    expect(typo.code).toBe(1)
    expect(typo.stderr).toContain('FILE: unknown column "colour"')
    expect(await products(tag)).toEqual([])
  })

  it('refuses a file that is neither CSV nor NDJSON', async () => {
    const result = await cli(['import', 'products', await file('xlsx', ['x'])])
    expect(result.code).toBe(1)
    expect(result.stderr).toContain('FILE: use a .csv, .ndjson or .jsonl file')
  })
})
