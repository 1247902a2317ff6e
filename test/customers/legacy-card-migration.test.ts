import { afterAll, describe, expect, it } from 'vitest'
import { erasedValue } from '../../src/customers/tombstones.ts'
import { cli } from '../support/cli.ts'
import { customerWithLegacyCard, databaseMigratedTo } from '../support/migrated-database.ts'

const BEFORE = '20261211T100000-create-customer-tag'

describe('migration 20261212T101500: legacy cards stored in full width take the form a scan reads', () => {
  const cleanups: (() => Promise<void>)[] = []
  afterAll(async () => {
    for (const fn of cleanups.reverse()) await fn()
  })

  it('rewrites them with NFKC, unless another legacy card already has (or takes) that form', async () => {
    const migrated = await databaseMigratedTo(BEFORE)
    cleanups.push(() => migrated.close())
    const { db } = migrated

    const holding = (value: string) => customerWithLegacyCard(db, value)
    // Linked at a register whose scanner typed through the IME in full-width mode.
    const wide = await holding('Ｌ１２３４５６')
    const spaced = await holding('ＡＢ－１２　３４')
    const ascii = await holding('L777')
    // The same card bound twice, once each way: which is the right one is the operator's call.
    const [twiceWide, twiceAscii] = [await holding('Ｌ８８８'), await holding('L888')]
    // Two forms that would both become L999: neither is rewritten.
    const [halfWide, allWide] = [await holding('L９９９'), await holding('Ｌ９９９')]
    const tombstone = erasedValue('legacy_card', 'Ｌ５５５')
    const erased = await holding(tombstone)

    const migrate = await cli(['migrate'], { DATABASE_URL: migrated.url })
    expect(migrate.code).toBe(0)
    const rows = await db
      .selectFrom('identity')
      .select(['customer_id', 'value'])
      .where('kind', '=', 'legacy_card')
      .execute()
    const cardOf = (id: string) => rows.find((r) => r.customer_id === id)?.value
    expect(cardOf(wide)).toBe('L123456')
    expect(cardOf(spaced)).toBe('AB-12 34')
    expect(cardOf(ascii)).toBe('L777')
    expect([cardOf(twiceWide), cardOf(twiceAscii)]).toEqual(['Ｌ８８８', 'L888'])
    expect([cardOf(halfWide), cardOf(allWide)]).toEqual(['L９９９', 'Ｌ９９９'])
    expect(cardOf(erased)).toBe(tombstone)

    // The operator is told how many it left (a scan does not find them) and whose, by ids only.
    const told = migrate.stderr.split('\n').filter((line) => line.includes('legacy card'))
    expect(told).toHaveLength(1)
    const [message = ''] = told
    expect(message).toMatch(/3 legacy cards left as they were/)
    const leftIds = await db
      .selectFrom('identity')
      .select('id')
      .where('customer_id', 'in', [twiceWide, halfWide, allWide])
      .execute()
    for (const id of [twiceWide, halfWide, allWide, ...leftIds.map((r) => r.id)]) {
      expect(message).toContain(id)
    }
    for (const id of [wide, spaced, ascii, twiceAscii, erased]) expect(message).not.toContain(id)
    for (const card of ['８８８', '888', '９９９', '999', '１２３', '123']) {
      expect(message).not.toContain(`L${card}`)
      expect(message).not.toContain(`Ｌ${card}`)
    }
    expect(message).toContain('README')
  })
})
