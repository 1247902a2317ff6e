import { randomUUID } from 'node:crypto'
import { mkdtemp, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadEnv } from '../../src/config/env.ts'
import { customerImportRowSchema } from '../../src/customers/customer.schemas.ts'
import { orderSchema } from '../../src/orders/order.schemas.ts'
import { createDb, type Database } from '../../src/platform/db.ts'
import { cli } from '../support/cli.ts'
import { TEST_DATABASE_URL } from '../support/env.ts'

// Values of `kizuna import customers` rows as Japanese exports write them.

let db: Database
let dir: string
beforeAll(async () => {
  db = await createDb(loadEnv({ DATABASE_URL: TEST_DATABASE_URL }))
  dir = await mkdtemp(join(tmpdir(), 'kizuna-row-values-'))
})
afterAll(async () => {
  await db.destroy()
})

async function importCsv(lines: string[]) {
  const file = join(dir, `${randomUUID()}.csv`)
  await writeFile(file, `${lines.join('\n')}\n`)
  return cli(['import', 'customers', file])
}

const customerOf = (externalId: string) =>
  db
    .selectFrom('identity')
    .innerJoin('customer', 'customer.id', 'identity.customer_id')
    .select(['customer.birthday', 'customer.email'])
    .where('identity.kind', '=', 'online_customer')
    .where('identity.value', '=', externalId)
    .executeTakeFirst()

const birthdayOf = (birthday: string) =>
  customerImportRowSchema.safeParse({ external_id: 'x', birthday })

describe('birthday', () => {
  it('takes YYYY-MM-DD, YYYY/MM/DD, YYYY.MM.DD and full-width digits, stored as the date', async () => {
    for (const typed of [
      '1990-04-01',
      '1990/04/01',
      '1990.04.01',
      '１９９０／０４／０１',
      '1990/4/1',
    ]) {
      const parsed = birthdayOf(typed)
      expect(parsed.success, typed).toBe(true)
      expect(parsed.data?.birthday, typed).toBe('1990-04-01')
    }
    const tag = randomUUID().slice(0, 8)
    const result = await importCsv([
      'external_id,birthday',
      `b1-${tag},1985/12/24`,
      `b2-${tag},２０００．０２．２９`,
    ])
    expect(result.stdout).toContain('created 2')
    const [b1, b2] = [await customerOf(`b1-${tag}`), await customerOf(`b2-${tag}`)]
    expect(String(b1?.birthday)).toContain('1985')
    expect(String(b2?.birthday)).toContain('2000')
  })

  it('refuses an impossible date, skipping the row with a message naming the field and the formats', async () => {
    for (const typed of ['1990/02/30', '2001.02.29', '1990-13-01', '1990/04', 'April 1']) {
      const parsed = birthdayOf(typed)
      expect(parsed.success, typed).toBe(false)
      expect(parsed.error?.issues[0]?.message, typed).toContain('YYYY/MM/DD')
    }
    const tag = randomUUID().slice(0, 8)
    const result = await importCsv(['external_id,name,birthday', `bad-${tag},Ken,1990/02/30`])
    expect(result.stdout).toContain('skipped 1')
    expect(result.stderr).toMatch(/line 2: birthday: .*YYYY-MM-DD.*YYYY\/MM\/DD.*YYYY\.MM\.DD/)
    expect(await customerOf(`bad-${tag}`)).toBeUndefined()
  })
})

describe('email', () => {
  it('reads a full-width email (NFKC) as the ASCII one, in the customer import and in orders', async () => {
    const tag = randomUUID().slice(0, 8)
    const wide = `ｓａｂｕｒｏ－${tag}＠ｅｘａｍｐｌｅ．ｃｏｍ`
    const ascii = `saburo-${tag}@example.com`
    const result = await importCsv(['external_id,email', `e1-${tag},${wide}`])
    expect(result.stdout).toContain('created 1')
    expect(await customerOf(`e1-${tag}`)).toMatchObject({ email: ascii })
    const held = await db
      .selectFrom('identity')
      .select('value')
      .where('kind', '=', 'email')
      .where('value', '=', ascii)
      .execute()
    expect(held).toHaveLength(1)
    const order = orderSchema.safeParse({
      source: 'webshop',
      orderId: 'W-1',
      customer: { email: `Ｓａｂｕｒｏ－${tag}＠ｅｘａｍｐｌｅ．ｃｏｍ` },
      orderedAt: '2026-11-20T10:00:00+09:00',
      lines: [{ sku: 'SOFA-1', quantity: 1, unitPrice: 1000 }],
      total: 1000,
    })
    expect(order.data?.customer.email).toBe(ascii)
  })
})

describe('phone', () => {
  const phoneOf = (typed: string) =>
    customerImportRowSchema.safeParse({ external_id: 'x', phone: typed }).data?.phone

  it('reads the country code 81 as the trunk 0 however it was written, as the migration did', () => {
    for (const typed of [
      '+81 90-1234-5678',
      '+81 (0)90-1234-5678',
      '+ 81 90 1234 5678',
      '+　８１　９０－１２３４－５６７８',
      '81-90-1234-5678', // a spreadsheet dropped the +
      '819012345678',
      '81 90 1234 5678', // a + read as a space in a query string, trimmed
      '090-1234-5678',
    ]) {
      expect(phoneOf(typed), typed).toBe('09012345678')
    }
    expect(phoneOf('81-3-1234-5678'), 'a landline').toBe('0312345678')
    // Not the +81 form: kept as typed (a domestic number never starts with 81).
    expect(phoneOf('8190123456')).toBe('8190123456')
    expect(phoneOf('+1 415 555 0100')).toBe('14155550100')
  })

  it('finds the customer of a phone stored as 0… by the number written 81-…', async () => {
    const tag = randomUUID().slice(0, 8)
    const digits = String(10_000_000 + Math.floor(Math.random() * 89_999_999))
    const result = await importCsv([
      'external_id,name,phone',
      `ph-${tag},Mei,090-${digits.slice(0, 4)}-${digits.slice(4)}`,
      `,Mei,81-90-${digits.slice(0, 4)}-${digits.slice(4)}`,
      `,Mei,+ 81 90 ${digits.slice(0, 4)} ${digits.slice(4)}`,
    ])
    expect(result.stderr).toBe('')
    expect(result.stdout).toContain('created 1, updated 0, unchanged 2')
    const phones = await db
      .selectFrom('identity')
      .select('value')
      .where('kind', '=', 'phone')
      .where('value', 'like', `%${digits}`)
      .execute()
    expect(phones).toEqual([{ value: `090${digits}` }])
  })
})

describe('marketing_consent', () => {
  const consentOf = (typed: string) =>
    customerImportRowSchema.safeParse({ external_id: 'x', marketing_consent: typed })

  it('takes true/false, yes/no, y/n, 1/0 and はい/いいえ (full-width too)', () => {
    for (const yes of ['true', 'YES', 'y', '1', '１', 'はい']) {
      expect(consentOf(yes).data?.marketing_consent, yes).toBe(true)
    }
    for (const no of ['false', 'No', 'n', '0', 'いいえ']) {
      expect(consentOf(no).data?.marketing_consent, no).toBe(false)
    }
  })

  it('says what it takes for another value', () => {
    const parsed = consentOf('maybe')
    expect(parsed.success).toBe(false)
    const message = parsed.error?.issues[0]?.message
    for (const word of ['true', 'false', 'yes', 'no', 'y', 'n', '1', '0', 'はい', 'いいえ']) {
      expect(message).toContain(word)
    }
  })
})
