import { randomUUID } from 'node:crypto'
import { mkdtemp, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createApiKey } from '../../src/auth/api-key.service.ts'
import { isValidEan13 } from '../../src/cards/ean13.ts'
import { findCustomerByIdentity } from '../../src/customers/customer-lookup.service.ts'
import { eraseCustomer } from '../../src/customers/erase.service.ts'
import type { IdentityKind } from '../../src/customers/identity-values.ts'
import type { Database } from '../../src/platform/db.ts'
import type { ScanResponse } from '../../src/pos/pos.schemas.ts'
import {
  fullWidth,
  legacyCardNumber,
  makeStoreKey,
  misread,
  printedCardNumber,
  receipt,
} from '../purchases/fixtures.ts'
import { cli } from '../support/cli.ts'
import { startTestKizuna, type TestKizuna } from '../support/harness.ts'
import { cardNumber, createCustomer, memberCardsOf } from './factories.ts'

let k: TestKizuna
let db: Database
let dir: string
let posKey: string
let adminKey: string
let staffCookie: string
beforeAll(async () => {
  k = await startTestKizuna()
  db = k.deps.db
  dir = await mkdtemp(join(tmpdir(), 'kizuna-customer-cards-'))
  posKey = (await makeStoreKey(db)).key
  adminKey = (await createApiKey(db, { storeId: null, scopes: ['admin'] })).key
  const login = await fetch(`${k.baseUrl}/staff/login`, {
    method: 'POST',
    headers: { origin: k.baseUrl ?? '', 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ key: posKey }),
    redirect: 'manual',
  })
  staffCookie = (login.headers.get('set-cookie') ?? '').split(';')[0] ?? ''
})
afterAll(async () => {
  await k?.stopAll()
})

async function csv(lines: string[]): Promise<string> {
  const file = join(dir, `${randomUUID()}.csv`)
  await writeFile(file, `${lines.join('\n')}\n`)
  return file
}

const idOf = async (kind: IdentityKind, value: string) => findCustomerByIdentity(db, kind, value)
const cardsOf = (customerId: string) => memberCardsOf(db, customerId)

const couponsOf = (customerId: string) =>
  db.selectFrom('coupon').select('kind').where('customer_id', '=', customerId).execute()

const posScan = (body: unknown) =>
  fetch(`${k.baseUrl}/api/pos/scans`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${posKey}` },
    body: JSON.stringify(body),
  })

const staffScan = (barcode: string) =>
  fetch(`${k.baseUrl}/staff/scan`, {
    method: 'POST',
    headers: { origin: k.baseUrl ?? '', cookie: staffCookie, 'content-type': 'application/json' },
    body: JSON.stringify({ barcode }),
  })

async function scannedCustomer(res: Response): Promise<string> {
  expect(res.status).toBe(200)
  return ((await res.json()) as ScanResponse).customer.id
}

describe('kizuna import customers: member cards', () => {
  it('issues a card, without a welcome coupon, to each customer lacking one; a re-run issues none', async () => {
    const tag = randomUUID().slice(0, 8)
    const kept = cardNumber()
    const carded = await createCustomer(db, {
      identities: [
        { kind: 'online_customer', value: `c-old-${tag}` },
        { kind: 'member_card', value: kept },
      ],
    })
    // Imported before cards came with imports: the next run gives them one.
    const earlier = await createCustomer(db, {
      identities: [{ kind: 'online_customer', value: `c-earlier-${tag}` }],
    })
    const file = await csv([
      'external_id,email,name',
      `c-new-${tag},new.${tag}@example.com,Nana`,
      `c-earlier-${tag},,Eri`,
      `c-old-${tag},,Oto`,
      `,mail-only.${tag}@example.com,Mai`,
    ])
    const first = await cli(['import', 'customers', file])
    expect(first.stderr).toBe('')
    expect(first.stdout).toContain(
      'customers: created 2, updated 2, unchanged 0, skipped 0, member cards issued 3',
    )

    const nana = await idOf('online_customer', `c-new-${tag}`)
    const mai = await idOf('email', `mail-only.${tag}@example.com`)
    const issued = [
      ...(await cardsOf(nana ?? '')),
      ...(await cardsOf(earlier.id)),
      ...(await cardsOf(mai ?? '')),
    ]
    expect(issued).toHaveLength(3)
    for (const card of issued) {
      expect(card).toMatch(/^29\d{11}$/)
      expect(isValidEan13(card)).toBe(true)
    }
    expect(await cardsOf(carded.id)).toEqual([kept])
    for (const id of [nana, earlier.id, mai, carded.id]) {
      expect(await couponsOf(id ?? '')).toEqual([])
    }

    const again = await cli(['import', 'customers', file])
    expect(again.stdout).toContain(
      'customers: created 0, updated 0, unchanged 4, skipped 0, member cards issued 0',
    )
    expect([
      ...(await cardsOf(nana ?? '')),
      ...(await cardsOf(earlier.id)),
      ...(await cardsOf(mai ?? '')),
    ]).toEqual(issued)
    expect(await cardsOf(carded.id)).toEqual([kept])
  })

  it("gives a card once to a row's customer named twice in a file, and none to a skipped row", async () => {
    const tag = randomUUID().slice(0, 8)
    const file = await csv([
      'external_id,name,birthday',
      `twice-${tag},Ko,`,
      `twice-${tag},Ko,1990-01-01`,
      `bad-${tag},Bad,1990-13-01`,
    ])
    const result = await cli(['import', 'customers', file])
    expect(result.stdout).toContain(
      'created 1, updated 1, unchanged 0, skipped 1, member cards issued 1',
    )
    expect(await cardsOf((await idOf('online_customer', `twice-${tag}`)) ?? '')).toHaveLength(1)
    expect(await idOf('online_customer', `bad-${tag}`)).toBeUndefined()
  })

  it("the imported member's card works at the register, on the staff page and in the admin lookup", async () => {
    const tag = randomUUID().slice(0, 8)
    const file = await csv(['external_id,name', `reg-${tag},Rika`])
    expect((await cli(['import', 'customers', file])).stdout).toContain('member cards issued 1')
    const rika = (await idOf('online_customer', `reg-${tag}`)) ?? ''
    const [card] = await cardsOf(rika)

    expect(await scannedCustomer(await posScan({ barcode: card }))).toBe(rika)
    const sale = await posScan({ barcode: card, receipt: receipt({ total: 2_000 }) })
    expect(sale.status).toBe(200)
    expect(((await sale.json()) as ScanResponse).purchase).toMatchObject({ total: 2_000 })
    expect(await scannedCustomer(await staffScan(card ?? ''))).toBe(rika)

    const lookup = await fetch(
      `${k.baseUrl}/api/customers?identity=${encodeURIComponent(`member_card:${card}`)}`,
      { headers: { authorization: `Bearer ${adminKey}` } },
    )
    expect(lookup.status).toBe(200)
    expect(await lookup.json()).toMatchObject({ id: rika, displayName: 'Rika' })
  })
})

describe('kizuna import customers: legacy_card column', () => {
  it('binds an old plastic card to the customer, who gets a member card too; both scan', async () => {
    const tag = randomUUID().slice(0, 8)
    const [alone, withAccount] = [legacyCardNumber(), legacyCardNumber()]
    const known = await createCustomer(db, {
      identities: [{ kind: 'online_customer', value: `lc-${tag}` }],
    })
    const file = await csv([
      'external_id,name,legacy_card',
      `,Yoshi,  ${alone} `,
      `lc-${tag},Kumi,${withAccount}`,
    ])
    const result = await cli(['import', 'customers', file])
    expect(result.stderr).toBe('')
    expect(result.stdout).toContain(
      'created 1, updated 1, unchanged 0, skipped 0, member cards issued 2',
    )
    const yoshi = (await idOf('legacy_card', alone)) ?? ''
    expect(yoshi).not.toBe('')
    expect(await idOf('legacy_card', withAccount)).toBe(known.id)

    expect(await scannedCustomer(await posScan({ barcode: alone }))).toBe(yoshi)
    expect(await scannedCustomer(await staffScan(withAccount))).toBe(known.id)
    const [card] = await cardsOf(yoshi)
    expect(await scannedCustomer(await posScan({ barcode: card }))).toBe(yoshi)

    // The card alone finds its customer again: a re-run changes nothing.
    const again = await cli(['import', 'customers', file])
    expect(again.stdout).toContain('unchanged 2, skipped 0, member cards issued 0')
  })

  it('refuses, by line and field, a legacy card a register could not scan as one', async () => {
    const tag = randomUUID().slice(0, 8)
    const file = await csv([
      'external_id,name,legacy_card',
      // A number of this store's member cards: the register reads it as a member card.
      `lb1-${tag},A,${cardNumber()}`,
      // Our prefix, 13 digits, wrong check digit: the register answers "misread, scan again".
      `lb2-${tag},B,${misread(cardNumber())}`,
      `lb3-${tag},C,L${'1'.repeat(64)}`,
      `lb4-${tag},D,${legacyCardNumber()}`,
    ])
    const result = await cli(['import', 'customers', file])
    expect(result.code).toBe(2) // rows skipped
    expect(result.stderr).toMatch(/line 2: legacy_card: .*member-card prefix 29/)
    expect(result.stderr).toMatch(/line 3: legacy_card: .*member-card prefix 29/)
    expect(result.stderr).toMatch(/line 4: legacy_card: .*64/)
    expect(result.stdout).toContain(
      'created 1, updated 0, unchanged 0, skipped 3, member cards issued 1',
    )
    for (const id of ['lb1', 'lb2', 'lb3']) {
      expect(await idOf('online_customer', `${id}-${tag}`)).toBeUndefined()
    }
  })

  it('never re-binds a card another LINE friend holds: the row is reported and skipped', async () => {
    const tag = randomUUID().slice(0, 8)
    const legacy = legacyCardNumber()
    const holder = await createCustomer(db, {
      line: true,
      identities: [
        { kind: 'member_card', value: cardNumber() },
        { kind: 'legacy_card', value: legacy },
      ],
    })
    const otherCard = cardNumber()
    const other = await createCustomer(db, {
      line: true,
      identities: [{ kind: 'member_card', value: otherCard }],
    })
    const file = await csv(['member_card,name,legacy_card', `${otherCard},Ami,${legacy}`])
    const result = await cli(['import', 'customers', file])
    expect(result.stderr).toMatch(/^line 2: legacy_card: .*LINE account/m)
    expect(result.stdout).toContain('created 0, updated 0, unchanged 0, skipped 1')
    expect(await idOf('legacy_card', legacy)).toBe(holder.id)
    expect(await scannedCustomer(await posScan({ barcode: legacy }))).toBe(holder.id)
    const ami = await db
      .selectFrom('customer')
      .select(['display_name', 'merged_into_id'])
      .where('id', '=', other.id)
      .executeTakeFirstOrThrow()
    expect(ami).toEqual({ display_name: null, merged_into_id: null })

    // The shop account of the LINE friend who linked the card at the register joins them (the
    // register's rule: merged, as a member_card would).
    const online = await createCustomer(db, {
      identities: [{ kind: 'online_customer', value: `web-${tag}` }],
    })
    const joined = await cli([
      'import',
      'customers',
      await csv(['external_id,legacy_card', `web-${tag},${legacy}`]),
    ])
    expect(joined.stdout).toContain('updated 1, unchanged 0, skipped 0, member cards issued 0')
    expect(await idOf('online_customer', `web-${tag}`)).toBe(holder.id)
    expect(
      (
        await db
          .selectFrom('customer')
          .select('merged_into_id')
          .where('id', '=', online.id)
          .executeTakeFirstOrThrow()
      ).merged_into_id,
    ).toBe(holder.id)
  })

  it('never gives a customer a second shop account through a card: the row is reported and skipped', async () => {
    const tag = randomUUID().slice(0, 8)
    const card = cardNumber()
    const legacy = legacyCardNumber()
    const member = await createCustomer(db, {
      identities: [
        { kind: 'online_customer', value: `web-${tag}` },
        { kind: 'member_card', value: card },
      ],
    })
    const other = await createCustomer(db, {
      identities: [
        { kind: 'online_customer', value: `shop-${tag}` },
        { kind: 'legacy_card', value: legacy },
      ],
    })
    // A new shop account with the member's card; the member's card with the other's old card.
    const result = await cli([
      'import',
      'customers',
      await csv([
        'external_id,member_card,legacy_card',
        `new-${tag},${card},`,
        `,${card},${legacy}`,
      ]),
    ])
    expect(result.stderr).toMatch(
      /^line 2: external_id: this customer already has another shop account \(two shop accounts are never merged\)$/m,
    )
    expect(result.stderr).toMatch(
      /^line 3: legacy_card: both customers have their own shop account.*\(two shop accounts are never merged\)$/m,
    )
    expect(result.stdout).toContain('created 0, updated 0, unchanged 0, skipped 2')
    expect(await idOf('online_customer', `new-${tag}`)).toBeUndefined()
    expect(await idOf('legacy_card', legacy)).toBe(other.id)
    expect(await idOf('online_customer', `web-${tag}`)).toBe(member.id)
    expect(await idOf('online_customer', `shop-${tag}`)).toBe(other.id)
  })

  it("refuses an erased person's legacy card, which never comes back", async () => {
    const legacy = legacyCardNumber()
    const gone = await createCustomer(db, {
      identities: [{ kind: 'legacy_card', value: legacy }],
    })
    await eraseCustomer(db, gone.id)
    const result = await cli([
      'import',
      'customers',
      await csv(['name,legacy_card', `Sora,${legacy}`]),
    ])
    expect(result.stderr).toContain('line 2: legacy_card: this customer was erased on request')
    expect(result.stdout).toContain('created 0, updated 0, unchanged 0, skipped 1')
    expect((await posScan({ barcode: legacy })).status).toBe(410)
  })
})

describe('kizuna import customers: card numbers in full width or with spaces', () => {
  it('stores them as a register reads them, so the same cards scan and look up however typed', async () => {
    const tag = randomUUID().slice(0, 8)
    const [card, printed] = [cardNumber(), cardNumber()]
    const [legacy, spaced] = [legacyCardNumber(), `AB-${legacyCardNumber()} 7`]
    // A legacy system's export: full-width digits, U+3000 around them, a card as printed.
    const file = await csv([
      'external_id,name,member_card,legacy_card',
      `fw1-${tag},Aki,\u3000${fullWidth(card)}\u3000,${fullWidth(legacy)}`,
      `fw2-${tag},Bun,${printedCardNumber(printed)}, ${fullWidth(spaced)}\u3000`,
    ])
    const result = await cli(['import', 'customers', file])
    expect(result.stderr).toBe('')
    expect(result.stdout).toContain('created 2, updated 0, unchanged 0, skipped 0')
    const aki = (await idOf('online_customer', `fw1-${tag}`)) ?? ''
    const bun = (await idOf('online_customer', `fw2-${tag}`)) ?? ''
    const stored = await db
      .selectFrom('identity')
      .select(['customer_id', 'kind', 'value'])
      .where('customer_id', 'in', [aki, bun])
      .where('kind', 'in', ['member_card', 'legacy_card'])
      .orderBy('kind')
      .execute()
    expect(stored.filter((i) => i.customer_id === aki)).toEqual([
      { customer_id: aki, kind: 'legacy_card', value: legacy },
      { customer_id: aki, kind: 'member_card', value: card },
    ])
    expect(stored.filter((i) => i.customer_id === bun)).toEqual([
      { customer_id: bun, kind: 'legacy_card', value: spaced },
      { customer_id: bun, kind: 'member_card', value: printed },
    ])

    for (const barcode of [card, fullWidth(card), legacy, fullWidth(legacy)]) {
      expect(await scannedCustomer(await posScan({ barcode })), barcode).toBe(aki)
    }
    for (const barcode of [printedCardNumber(printed), fullWidth(printed), spaced]) {
      expect(await scannedCustomer(await staffScan(barcode)), barcode).toBe(bun)
    }

    // The same file in ASCII finds the same customers and changes nothing.
    const ascii = await csv([
      'external_id,name,member_card,legacy_card',
      `fw1-${tag},Aki,${card},${legacy}`,
      `fw2-${tag},Bun,${printed},${spaced}`,
    ])
    expect((await cli(['import', 'customers', ascii])).stdout).toContain(
      'created 0, updated 0, unchanged 2, skipped 0, member cards issued 0',
    )
  })

  it('refuses a full-width misread member card, and a full-width member card given as legacy_card', async () => {
    const tag = randomUUID().slice(0, 8)
    const file = await csv([
      'external_id,name,member_card,legacy_card',
      `fm1-${tag},A,${fullWidth(misread(cardNumber()))},`,
      `fm2-${tag},B,,${fullWidth(cardNumber())}`,
    ])
    const result = await cli(['import', 'customers', file])
    expect(result.stderr).toMatch(/line 2: member_card: .*check digit/)
    expect(result.stderr).toMatch(/line 3: legacy_card: .*member-card prefix 29/)
    expect(result.stdout).toContain('created 0, updated 0, unchanged 0, skipped 2')
  })

  it('keeps a legacy card whose spaces hide 13 digits with the prefix: a legacy card, as its column says', async () => {
    const tag = randomUUID().slice(0, 8)
    // "29 0012 3456 789": a wrong check digit (9 in 10) or, by chance, a right one.
    const spaced = (digits: string) =>
      `${digits.slice(0, 2)} ${digits.slice(2, 6)} ${digits.slice(6, 10)} ${digits.slice(10)}`
    const [misreadLike, validLike] = [spaced(misread(cardNumber())), spaced(cardNumber())]
    // Bound by an import before card numbers were read with NFKC, then the same file again.
    const known = await createCustomer(db, {
      identities: [
        { kind: 'online_customer', value: `sp1-${tag}` },
        { kind: 'legacy_card', value: misreadLike },
      ],
    })
    const lines = [
      'external_id,legacy_card',
      `sp1-${tag},${misreadLike}`,
      `sp2-${tag},${validLike}`,
      `sp3-${tag},${printedCardNumber(cardNumber())}`,
    ]
    const result = await cli(['import', 'customers', await csv(lines)])
    expect(result.stderr).toBe('')
    expect(result.stdout).toContain('created 2, updated 0, unchanged 1, skipped 0')
    expect(await idOf('legacy_card', misreadLike)).toBe(known.id)
    const sp2 = await idOf('online_customer', `sp2-${tag}`)
    expect(await idOf('legacy_card', validLike)).toBe(sp2)
    for (const [barcode, holder] of [
      [misreadLike, known.id],
      [validLike, sp2],
    ] as const) {
      expect(await scannedCustomer(await posScan({ barcode })), barcode).toBe(holder)
    }
    expect((await cli(['import', 'customers', await csv(lines)])).stdout).toContain(
      'created 0, updated 0, unchanged 3, skipped 0',
    )
  })
})
