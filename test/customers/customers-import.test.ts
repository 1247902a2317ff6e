import { randomUUID } from 'node:crypto'
import { mkdtemp, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadEnv } from '../../src/config/env.ts'
import { loadConsent, setConsent } from '../../src/consent/consent.service.ts'
import { customerImportRowSchema } from '../../src/customers/customer.schemas.ts'
import { importCustomerRow } from '../../src/customers/customer-import.service.ts'
import { listCustomerTags } from '../../src/customers/customer-tag.repo.ts'
import { changeCustomerTags } from '../../src/customers/customer-tag.service.ts'
import { eraseCustomer } from '../../src/customers/erase.service.ts'
import { createDb, type Database } from '../../src/platform/db.ts'
import { readBarcode } from '../../src/pos/barcode.ts'
import { resolveBarcode } from '../../src/pos/barcode-owner.ts'
import { cli } from '../support/cli.ts'
import { TEST_DATABASE_URL } from '../support/env.ts'
import { relinkQueue } from '../support/relink-queue.ts'
import { cardNumber, createCustomer, keyedPhoneTombstone } from './factories.ts'

let db: Database
let dir: string
beforeAll(async () => {
  db = await createDb(loadEnv({ DATABASE_URL: TEST_DATABASE_URL }))
  dir = await mkdtemp(join(tmpdir(), 'kizuna-customers-'))
})
afterAll(async () => {
  await db.destroy()
})

async function csv(lines: string[]): Promise<string> {
  const file = join(dir, `${randomUUID()}.csv`)
  await writeFile(file, `${lines.join('\n')}\n`)
  return file
}

const HEADER = 'external_id,email,name,phone,birthday,member_card,marketing_consent'

const tagsOf = (customerId: string) => listCustomerTags(db, customerId)

/** One row through importCustomerRow; its warnings are pushed as `<label><field>: <message>`. */
async function importRow(warnings: string[], row: Record<string, string>, label = '') {
  const env = loadEnv({ DATABASE_URL: TEST_DATABASE_URL })
  const result = await importCustomerRow(db, env, customerImportRowSchema.parse(row), (f, m) =>
    warnings.push(`${label}${f}: ${m}`),
  )
  return result.outcome
}

async function customerWith(kind: string, value: string) {
  return db
    .selectFrom('identity')
    .innerJoin('customer', 'customer.id', 'identity.customer_id')
    .selectAll('customer')
    .where('identity.kind', '=', kind)
    .where('identity.value', '=', value)
    .executeTakeFirst()
}

describe('kizuna import customers', () => {
  it('queues one rich-menu re-link when it created or updated customers, and none otherwise', async () => {
    const queue = relinkQueue()
    try {
      const tag = randomUUID().slice(0, 8)
      const file = await csv([HEADER, `shop-${tag},${tag}@example.com,Aoi,,,,`])
      const first = await cli(['import', 'customers', file], queue.env)
      expect(first.stdout).toContain('customers: created 1')
      expect(first.stdout).toContain('rich menus: re-linking queued')
      expect(await queue.relinkJobs()).toHaveLength(1)

      const again = await cli(['import', 'customers', file], queue.env)
      expect(again.stdout).toContain('created 0, updated 0, unchanged 1')
      expect(again.stdout).not.toContain('re-linking')
      expect(await queue.relinkJobs()).toHaveLength(1)
    } finally {
      await queue.close()
    }
  })

  it('creates customers with normalised identities, and a re-run changes nothing', async () => {
    const tag = randomUUID().slice(0, 8)
    const card = cardNumber()
    const file = await csv([
      HEADER,
      `shop-${tag},  Mika.${tag}@Example.COM ,Mika,090-1234-5678,1990-02-03,${card},true`,
      `,ren.${tag}@example.com,Ren,,,,no`,
    ])
    const first = await cli(['import', 'customers', file])
    expect(first.code).toBe(0)
    expect(first.stdout).toContain('created 2, updated 0, unchanged 0, skipped 0')

    const mika = await customerWith('online_customer', `shop-${tag}`)
    expect(mika).toMatchObject({
      display_name: 'Mika',
      email: `mika.${tag}@example.com`,
      phone: '09012345678',
    })
    expect((await loadConsent(db, mika!.id)).marketing).toEqual({ line: true, email: true })
    const identities = await db
      .selectFrom('identity')
      .select(['kind', 'value'])
      .where('customer_id', '=', mika!.id)
      .orderBy('kind')
      .execute()
    expect(identities).toEqual([
      { kind: 'email', value: `mika.${tag}@example.com` },
      { kind: 'member_card', value: card },
      { kind: 'online_customer', value: `shop-${tag}` },
      { kind: 'phone', value: '09012345678' },
    ])
    const ren = await customerWith('email', `ren.${tag}@example.com`)
    expect((await loadConsent(db, ren!.id)).marketing).toEqual({ line: false, email: false })

    const again = await cli(['import', 'customers', file])
    expect(again.stdout).toContain('created 0, updated 0, unchanged 2, skipped 0')
    const count = await db
      .selectFrom('identity')
      .select((eb) => eb.fn.countAll<string>().as('n'))
      .where('value', 'like', `%${tag}%`)
      .executeTakeFirstOrThrow()
    expect(count.n).toBe('3')
  })

  it('withdraws marketing consent, but never re-grants what the person refused', async () => {
    const tag = randomUUID().slice(0, 8)
    const row = (consent: string) => `shop-${tag},,Aoi,,,,${consent}`
    expect((await cli(['import', 'customers', await csv([HEADER, row('true')])])).code).toBe(0)
    const aoi = await customerWith('online_customer', `shop-${tag}`)
    // The shopper opts out of marketing on LINE.
    await setConsent(db, aoi!.id, {
      category: 'marketing',
      channel: 'line',
      granted: false,
      source: 'line-postback',
    })
    // The shop's next export still says yes: email (the import's own row) stays granted, LINE
    // stays refused.
    await cli(['import', 'customers', await csv([HEADER, row('true')])])
    expect((await loadConsent(db, aoi!.id)).marketing).toEqual({ line: false, email: true })
    // A "no" from the shop is taken; a later "yes" restores only what the import itself set.
    await cli(['import', 'customers', await csv([HEADER, row('false')])])
    expect((await loadConsent(db, aoi!.id)).marketing).toEqual({ line: false, email: false })
    await cli(['import', 'customers', await csv([HEADER, row('true')])])
    expect((await loadConsent(db, aoi!.id)).marketing).toEqual({ line: false, email: true })
  })

  it('reports bad rows by line and field, skips them and imports the rest', async () => {
    const tag = randomUUID().slice(0, 8)
    const file = await csv([
      HEADER,
      `shop-${tag},,Good,,,,`,
      // An address as Japanese carriers issued them: two dots in a row, a dot before the @.
      `shop-jp-${tag},Taro..Yamada.${tag}@docomo.ne.jp,Carrier,,,,`,
      ',,No id,,,,',
      `shop-b-${tag},not-an-email,Bad,,,,`,
      `shop-c-${tag},,Bad,,1990-13-01,4006381333932,maybe`,
    ])
    const result = await cli(['import', 'customers', file])
    expect(result.code).toBe(2) // rows skipped
    expect(result.stderr).toContain(
      'line 4: external_id: give at least one of external_id, email, member_card, legacy_card, phone',
    )
    expect(result.stderr).toContain('line 5: email: not a valid email address')
    expect(result.stderr).toMatch(
      /line 6: birthday: .*; member_card: .*EAN-13.*; marketing_consent/,
    )
    expect(result.stdout).toContain('created 2, updated 0, unchanged 0, skipped 3')
    expect(await customerWith('email', `taro..yamada.${tag}@docomo.ne.jp`)).toBeDefined()
    expect(await customerWith('online_customer', `shop-b-${tag}`)).toBeUndefined()
  })

  it('merges an imported online account into the LINE friend holding its card, and refuses a second LINE account', async () => {
    const tag = randomUUID().slice(0, 8)
    const card = cardNumber()
    const friend = await createCustomer(db, {
      line: true,
      marketingConsent: true,
      identities: [{ kind: 'member_card', value: card }],
    })
    const online = await createCustomer(db, {
      identities: [{ kind: 'online_customer', value: `shop-${tag}` }],
    })
    const otherCard = cardNumber()
    const a = await createCustomer(db, {
      line: true,
      identities: [{ kind: 'member_card', value: otherCard }],
    })
    await createCustomer(db, {
      line: true,
      identities: [{ kind: 'online_customer', value: `shop-x-${tag}` }],
    })

    const file = await csv([
      HEADER,
      `shop-${tag},,,,,${card},false`,
      `shop-x-${tag},,,,,${otherCard},`,
    ])
    const result = await cli(['import', 'customers', file])
    expect(result.stdout).toContain('created 0, updated 1, unchanged 0, skipped 1')
    expect(result.stderr).toMatch(/line 3: member_card: .*LINE account/)

    const merged = await db
      .selectFrom('customer')
      .selectAll()
      .where('id', '=', online.id)
      .executeTakeFirstOrThrow()
    expect(merged.merged_into_id).toBe(friend.id)
    expect(await customerWith('online_customer', `shop-${tag}`)).toMatchObject({ id: friend.id })
    expect((await loadConsent(db, friend.id)).marketing).toEqual({ line: false, email: false })
    expect(await customerWith('member_card', otherCard)).toMatchObject({ id: a.id })
  })

  it("keeps a merged customer's unsubscribe when the row that merges them says yes", async () => {
    const email = `${randomUUID()}@example.jp`
    const card = cardNumber()
    // The member: an import's "no" on both channels.
    const member = await createCustomer(db, {
      marketingConsent: false,
      identities: [{ kind: 'member_card', value: card }],
    })
    // The same person's email customer, who unsubscribed from marketing email (same value as
    // the member's, a stronger source).
    const emailed = await createCustomer(db, {
      email,
      identities: [{ kind: 'email', value: email }],
    })
    await setConsent(db, emailed.id, {
      category: 'marketing',
      channel: 'email',
      granted: false,
      source: 'email-unsubscribe',
    })
    // One row names both (merging them) and says yes.
    const warnings: string[] = []
    expect(await importRow(warnings, { email, member_card: card, marketing_consent: 'yes' })).toBe(
      'updated',
    )
    expect(warnings).toEqual([])
    expect(await customerWith('email', email)).toMatchObject({ id: member.id })
    // The import's own "no" on LINE is granted; the person's unsubscribe stands.
    expect((await loadConsent(db, member.id)).marketing).toEqual({ line: true, email: false })
  })

  it('never re-creates an erased person from an old file: the row is reported and skipped', async () => {
    const tag = randomUUID().slice(0, 8)
    const card = cardNumber()
    const email = `gone.${tag}@example.com`
    const file = await csv([HEADER, `shop-${tag},${email},Sora,03-1111-2222,,${card},true`])
    expect((await cli(['import', 'customers', file])).stdout).toContain('created 1')
    const sora = await customerWith('online_customer', `shop-${tag}`)
    await eraseCustomer(db, sora!.id)

    const again = await cli(['import', 'customers', file])
    expect(again.code).toBe(2) // rows skipped
    expect(again.stderr).toContain('line 2: external_id: this customer was erased on request')
    expect(again.stdout).toContain('created 0, updated 0, unchanged 0, skipped 1')
    // Each id alone is refused too, the phone as well: a row naming no one but the erased
    // phone is the erased person (their name, birthday, consent and tags would come back).
    const alone = await csv([
      HEADER,
      `,,Sora,,,${card},`,
      `,${email},Sora,,,,`,
      `,,Sora,03-1111-2222,1990-01-02,,`,
    ])
    const result = await cli(['import', 'customers', alone])
    expect(result.stderr).toContain('line 2: member_card: this customer was erased on request')
    expect(result.stderr).toContain('line 3: email: this customer was erased on request')
    expect(result.stderr).toContain('line 4: phone: this customer was erased on request')
    expect(result.stderr).not.toContain('1111')
    expect(result.stdout).toContain('created 0, updated 0, unchanged 0, skipped 3')
    expect(await customerWith('phone', '0311112222')).toBeUndefined()
    // The phone's tombstone is keyed with the database's secret: Japanese phone numbers are
    // few enough (~3×10^8) to hash them all, so a plain SHA-256 would keep the phone.
    const phones = await db
      .selectFrom('identity')
      .select('value')
      .where('kind', '=', 'phone')
      .where('customer_id', '=', sora!.id)
      .execute()
    const tombstone = await keyedPhoneTombstone(db, '0311112222')
    expect(phones.map((p) => p.value)).not.toContain(tombstone.plain)
    expect(phones).toEqual([{ value: tombstone.keyed }])
    // A household shares the phone: a row naming someone by another id still takes it, and
    // then a row naming only the phone is that live person's.
    const family = await csv([HEADER, `fam-${tag},,Riku,03-1111-2222,,,`])
    expect((await cli(['import', 'customers', family])).stdout).toContain(
      'created 1, updated 0, unchanged 0, skipped 0',
    )
    const riku = await customerWith('online_customer', `fam-${tag}`)
    expect(await customerWith('phone', '0311112222')).toMatchObject({ id: riku?.id })
    const phoneOnly = await csv([HEADER, `,,Riku,03-1111-2222,1988-05-05,,`])
    const rikuAgain = await cli(['import', 'customers', phoneOnly])
    expect(rikuAgain.stderr).toBe('')
    expect(rikuAgain.stdout).toContain('created 0, updated 1, unchanged 0, skipped 0')
    const live = await db
      .selectFrom('identity')
      .select('kind')
      .where('value', 'in', [`shop-${tag}`, card, email])
      .execute()
    expect(live).toEqual([])
    await expect(resolveBarcode(db, readBarcode(card, '29'))).rejects.toMatchObject({
      code: 'GONE',
    })

    // Sora signs up again: a new shop account with the same email is a new registration.
    const back = await csv([HEADER, `shop2-${tag},${email},Sora,,,,`])
    const returned = await cli(['import', 'customers', back])
    expect(returned.stderr).toBe('')
    expect(returned.stdout).toContain('created 1, updated 0, unchanged 0, skipped 0')
    const sora2 = await customerWith('email', email)
    expect(sora2).toMatchObject({ display_name: 'Sora', email, erased_at: null })
    expect((await customerWith('online_customer', `shop2-${tag}`))?.id).toBe(sora2?.id)
    // The old file still cannot bring back the erased shop account or card.
    const old = await cli(['import', 'customers', file])
    expect(old.stderr).toContain('line 2: external_id: this customer was erased on request')
  })

  it('prints a warning by line for a shared phone, and creates both', async () => {
    const tag = randomUUID().slice(0, 8)
    const phone = `03${randomUUID().replaceAll(/\D/g, '').padEnd(8, '0').slice(0, 8)}`
    const file = await csv([
      HEADER,
      `w1-${tag},,Mother,${phone},,,`,
      `w2-${tag},,Father,${phone},,,`,
    ])
    const result = await cli(['import', 'customers', file])
    expect(result.code).toBe(0)
    expect(result.stderr).toContain('line 3: warning: phone: held by a customer with another')
    expect(result.stdout).toContain('created 2')
  })

  it('never merges two people with their own emails through a shared phone, and a re-run changes nothing', async () => {
    const tag = randomUUID().slice(0, 8)
    const phone = `03${randomUUID().replaceAll(/\D/g, '').padEnd(8, '0').slice(0, 8)}`
    const [taroEmail, hanakoEmail] = [`taro.${tag}@example.com`, `hanako.${tag}@example.com`]
    const file = await csv([
      HEADER,
      `,${taroEmail},Taro,${phone},,,`,
      `,${hanakoEmail},Hanako,${phone},,,`,
    ])
    const first = await cli(['import', 'customers', file])
    expect(first.code).toBe(0)
    expect(first.stderr).toContain('line 3: warning: phone: held by another customer with')
    expect(first.stdout).toContain('created 2, updated 0, unchanged 0, skipped 0')
    const taro = await customerWith('email', taroEmail)
    const hanako = await customerWith('email', hanakoEmail)
    expect(taro).toMatchObject({ display_name: 'Taro', email: taroEmail, phone })
    expect(hanako).toMatchObject({ display_name: 'Hanako', email: hanakoEmail, phone })
    expect(hanako?.id).not.toBe(taro?.id)
    expect(await customerWith('phone', phone)).toMatchObject({ id: taro?.id })

    const again = await cli(['import', 'customers', file])
    expect(again.stdout).toContain('created 0, updated 0, unchanged 2, skipped 0')
    expect(await customerWith('email', taroEmail)).toMatchObject({ display_name: 'Taro' })
  })

  it('never merges two shop accounts that share a phone or an email: only that id is left off', async () => {
    const tag = randomUUID().slice(0, 8)
    const phone = `03${randomUUID().replaceAll(/\D/g, '').padEnd(8, '0').slice(0, 8)}`
    const warnings: string[] = []
    const run = (line: number, row: Record<string, string>) => importRow(warnings, row, `${line} `)
    const mother = `mother.${tag}@example.com`
    expect(await run(2, { external_id: `a-${tag}`, email: mother, name: 'Hanako', phone })).toBe(
      'created',
    )
    expect(await run(3, { external_id: `b-${tag}`, name: 'Taro', phone })).toBe('created')
    expect(await run(4, { external_id: `c-${tag}`, email: mother, name: 'Jiro' })).toBe('created')
    expect(await run(5, { external_id: `d-${tag}`, marketing_consent: 'true' })).toBe('created')
    // The son opts out; the shop's row also carries the family phone.
    expect(await run(6, { external_id: `d-${tag}`, phone, marketing_consent: 'false' })).toBe(
      'updated',
    )
    const conflict = 'held by a customer with another external_id; not attached'
    expect(warnings).toEqual([
      expect.stringContaining(`3 phone: ${conflict}`),
      expect.stringContaining(`4 email: ${conflict}`),
      expect.stringContaining(`6 phone: ${conflict}`),
    ])

    const hanako = await customerWith('online_customer', `a-${tag}`)
    expect(hanako).toMatchObject({ display_name: 'Hanako', email: mother, phone })
    const taro = await customerWith('online_customer', `b-${tag}`)
    expect(taro).toMatchObject({ display_name: 'Taro', phone })
    const son = await customerWith('online_customer', `d-${tag}`)
    expect((await loadConsent(db, son!.id)).marketing).toEqual({ line: false, email: false })
    const identities = await db
      .selectFrom('identity')
      .select(['kind', 'value', 'customer_id'])
      .where((eb) => eb.or([eb('value', 'like', `%${tag}%`), eb('value', '=', phone)]))
      .execute()
    expect(new Set(identities.map((i) => i.customer_id)).size).toBe(4)
    expect(identities.filter((i) => i.customer_id === hanako!.id)).toHaveLength(3)
  })

  it("applies a LINE friend's row whose phone another LINE friend holds, leaving only the phone off", async () => {
    const phone = `03${randomUUID().replaceAll(/\D/g, '').padEnd(8, '0').slice(0, 8)}`
    const [motherCard, sonCard] = [cardNumber(), cardNumber()]
    const mother = await createCustomer(db, {
      line: true,
      identities: [{ kind: 'member_card', value: motherCard }],
    })
    const son = await createCustomer(db, {
      line: true,
      marketingConsent: true,
      identities: [{ kind: 'member_card', value: sonCard }],
    })
    const warnings: string[] = []
    const run = (row: Record<string, string>) => importRow(warnings, row)
    expect(await run({ member_card: motherCard, phone })).toBe('updated')
    // The son opts out; the shop's row also carries the family phone.
    expect(
      await run({ member_card: sonCard, name: 'Ren', phone, marketing_consent: 'false' }),
    ).toBe('updated')
    expect(warnings).toEqual([expect.stringMatching(/^phone: .*LINE account/)])
    expect((await loadConsent(db, son.id)).marketing).toEqual({ line: false, email: false })
    expect(await customerWith('member_card', sonCard)).toMatchObject({
      id: son.id,
      display_name: 'Ren',
      phone,
    })
    expect(await customerWith('phone', phone)).toMatchObject({ id: mother.id })
  })

  it('never merges a shop customer and a member through a household phone, either way round', async () => {
    const tag = randomUUID().slice(0, 8)
    const phone = () => `03${randomUUID().replaceAll(/\D/g, '').padEnd(8, '0').slice(0, 8)}`
    const [home, home2] = [phone(), phone()]
    const [hanakoCard, yukiCard] = [cardNumber(), cardNumber()]
    const hanako = await createCustomer(db, {
      line: true,
      identities: [{ kind: 'member_card', value: hanakoCard }],
    })
    const yuki = await createCustomer(db, {
      line: true,
      identities: [{ kind: 'member_card', value: yukiCard }],
    })
    const warnings: string[] = []
    const run = (row: Record<string, string>) => importRow(warnings, row)
    // Taro's shop account first, then the member card of Hanako with the same home phone.
    expect(await run({ external_id: `taro-${tag}`, name: 'Taro', phone: home })).toBe('created')
    expect(await run({ member_card: hanakoCard, name: 'Hanako', phone: home })).toBe('updated')
    // The other way round: Yuki's card with a phone, then Jiro's shop account with it.
    expect(await run({ member_card: yukiCard, phone: home2 })).toBe('updated')
    expect(await run({ external_id: `jiro-${tag}`, name: 'Jiro', phone: home2 })).toBe('created')

    expect(warnings).toEqual([expect.stringMatching(/^phone: /), expect.stringMatching(/^phone: /)])
    const taro = await customerWith('online_customer', `taro-${tag}`)
    expect(taro).toMatchObject({ display_name: 'Taro', merged_into_id: null, phone: home })
    expect(await customerWith('member_card', hanakoCard)).toMatchObject({
      id: hanako.id,
      display_name: 'Hanako',
      phone: home,
    })
    const jiro = await customerWith('online_customer', `jiro-${tag}`)
    expect(jiro).toMatchObject({ display_name: 'Jiro', merged_into_id: null })
    expect(jiro?.id).not.toBe(yuki.id)
    expect(await customerWith('phone', home)).toMatchObject({ id: taro?.id })
    expect(await customerWith('phone', home2)).toMatchObject({ id: yuki.id })
  })

  it('stores a phone written +81, with full-width digits or hyphens as the one domestic number', async () => {
    const tag = randomUUID().slice(0, 8)
    const digits = randomUUID().replaceAll(/\D/g, '').padEnd(8, '0').slice(0, 8)
    const local = `090${digits}`
    const wide = (s: string) =>
      s.replace(/[0-9-]/g, (c) =>
        c === '-' ? '－' : String.fromCharCode(c.charCodeAt(0) + 0xfee0),
      )
    const dashed = `090-${digits.slice(0, 4)}-${digits.slice(4)}`
    const file = await csv([
      HEADER,
      `p-${tag},,Yui,+81 90-${digits.slice(0, 4)}-${digits.slice(4)},,,`,
      `,,Yui,${wide(dashed)},,,`,
      `p2-${tag},,Extension,${dashed} ext 12,,,`,
    ])
    const result = await cli(['import', 'customers', file])
    expect(result.code).toBe(2) // rows skipped
    expect(result.stderr).toContain('line 4: phone:')
    expect(result.stderr).not.toContain(digits)
    expect(result.stdout).toContain('created 1, updated 0, unchanged 1, skipped 1')
    const yui = await customerWith('phone', local)
    expect(yui).toMatchObject({ display_name: 'Yui', phone: local })
    expect(await customerWith('online_customer', `p-${tag}`)).toMatchObject({ id: yui!.id })
    expect(await customerWith('online_customer', `p2-${tag}`)).toBeUndefined()
  })

  it('refuses a name with a control character as a product name is, and makes a line break a space', async () => {
    const tag = randomUUID().slice(0, 8)
    const file = await csv([
      'external_id,name',
      `cc1-${tag},Bell\u0007`,
      `cc2-${tag},\u001b[31mRed`,
      `cc3-${tag},"Taro\nYamada"`,
    ])
    const result = await cli(['import', 'customers', file])
    expect(result.code).toBe(2) // rows skipped
    expect(result.stderr).toContain('line 2: name: contains a control character (\\u0007)')
    expect(result.stderr).toContain('line 3: name: contains a control character (\\u001b)')
    expect(result.stdout).toContain('created 1, updated 0, unchanged 0, skipped 2')
    expect(await customerWith('online_customer', `cc1-${tag}`)).toBeUndefined()
    expect(await customerWith('online_customer', `cc2-${tag}`)).toBeUndefined()
    expect(await customerWith('online_customer', `cc3-${tag}`)).toMatchObject({
      display_name: 'Taro Yamada',
    })
  })

  it('refuses a birthday in the future or before 1900, naming the field', async () => {
    const tag = randomUUID().slice(0, 8)
    const tomorrow = new Date(Date.now() + 2 * 86_400_000).toISOString().slice(0, 10)
    const file = await csv([
      HEADER,
      `bd1-${tag},,Future,,${tomorrow},,`,
      `bd2-${tag},,Ancient,,1800-01-01,,`,
      `bd3-${tag},,Leap,,2024-02-29,,`,
    ])
    const result = await cli(['import', 'customers', file])
    expect(result.code).toBe(2) // rows skipped
    expect(result.stderr).toMatch(/line 2: birthday: /)
    expect(result.stderr).toMatch(/line 3: birthday: /)
    expect(result.stdout).toContain('created 1, updated 0, unchanged 0, skipped 2')
    expect(await customerWith('online_customer', `bd1-${tag}`)).toBeUndefined()
    expect(await customerWith('online_customer', `bd2-${tag}`)).toBeUndefined()
  })

  it("refuses a member card outside this store's prefix, which no scan would find", async () => {
    const tag = randomUUID().slice(0, 8)
    const file = await csv([HEADER, `mc-${tag},,Jan,,,4901234567894,`])
    const result = await cli(['import', 'customers', file])
    expect(result.code).toBe(2) // rows skipped
    expect(result.stderr).toMatch(/line 2: member_card: .*prefix 29/)
    expect(result.stdout).toContain('skipped 1')
    expect(await customerWith('online_customer', `mc-${tag}`)).toBeUndefined()
  })

  it('adds the tags column (separated by ;) to the customer, never removing one it had', async () => {
    const tag = randomUUID().slice(0, 8)
    const known = await createCustomer(db, {
      identities: [{ kind: 'online_customer', value: `tags-old-${tag}` }],
    })
    await changeCustomerTags(db, known.id, { add: ['dm-ok'] })
    const file = await csv([
      'external_id,name,tags',
      `tags-new-${tag},Nao,"VIP; ソファ購入;;ｶﾞｰﾃﾞﾝ；Sofa "`,
      `tags-old-${tag},Rin,vip`,
    ])
    const first = await cli(['import', 'customers', file])
    expect(first.stderr).toBe('')
    expect(first.stdout).toContain('created 1, updated 1, unchanged 0, skipped 0')
    const nao = await customerWith('online_customer', `tags-new-${tag}`)
    expect(await tagsOf(nao!.id)).toEqual(['sofa', 'vip', 'ガーデン', 'ソファ購入'])
    expect(await tagsOf(known.id)).toEqual(['dm-ok', 'vip'])

    const again = await cli(['import', 'customers', file])
    expect(again.stdout).toContain('created 0, updated 0, unchanged 2, skipped 0')
    expect(await tagsOf(known.id)).toEqual(['dm-ok', 'vip'])
  })

  it('reports a bad tag by line and field and skips the row, tags and all', async () => {
    const tag = randomUUID().slice(0, 8)
    const file = await csv([
      'external_id,name,tags',
      `badtag-a-${tag},Kai,vip;${'x'.repeat(51)}`,
      `badtag-b-${tag},Emi,"vip,sofa"`,
      `badtag-c-${tag},Sho,vip`,
    ])
    const result = await cli(['import', 'customers', file])
    expect(result.code).toBe(2) // rows skipped
    expect(result.stderr).toContain('line 2: tags: tag 2: too long (51 characters): at most 50')
    expect(result.stderr).toContain('line 3: tags: tag 1: contains a comma or semicolon')
    expect(result.stdout).toContain('created 1, updated 0, unchanged 0, skipped 2')
    expect(await customerWith('online_customer', `badtag-a-${tag}`)).toBeUndefined()
    expect(await customerWith('online_customer', `badtag-b-${tag}`)).toBeUndefined()
    const sho = await customerWith('online_customer', `badtag-c-${tag}`)
    expect(await tagsOf(sho!.id)).toEqual(['vip'])
  })

  it('refuses a file without a header, or with columns named like data, echoing none of its values', async () => {
    const tag = randomUUID().slice(0, 8)
    const digits = randomUUID().replaceAll(/\D/g, '').padEnd(8, '0').slice(0, 8)
    const row = `a1-${tag},taro.${tag}@example.com,Taro Yamada,090${digits}`
    const headerless = await cli(['import', 'customers', await csv([row, row])])
    expect(headerless.code).toBe(1)
    expect(headerless.stderr).toContain(
      'FILE: line 1 is not a header (none of its cells names a column); the columns are external_id, email,',
    )
    for (const value of ['@', digits, 'taro', 'a1-']) expect(headerless.stderr).not.toContain(value)
    // A header with a data row's values in some columns: the names that look like a column's are
    // given, the others by position.
    const mixed = await cli([
      'import',
      'customers',
      await csv([`external_id,e-mail,taro.${tag}@example.com,090${digits}`, row]),
    ])
    expect(mixed.code).toBe(1)
    expect(mixed.stderr).toContain(
      'FILE: unknown column "e-mail"; columns 3, 4 are named like data, not columns (their names are not shown)',
    )
    for (const value of ['@', digits]) expect(mixed.stderr).not.toContain(value)
    expect(await customerWith('online_customer', `a1-${tag}`)).toBeUndefined()
  })

  it('refuses a file naming a column twice, in any case, before writing anything', async () => {
    const tag = randomUUID().slice(0, 8)
    const file = await csv([
      'external_id,email,Email',
      `twice-${tag},a.${tag}@example.com,b.${tag}@example.com`,
    ])
    const result = await cli(['import', 'customers', file])
    expect(result.code).toBe(1)
    expect(result.stderr).toContain('FILE: column "email" appears twice (columns 2 and 3)')
    expect(await customerWith('online_customer', `twice-${tag}`)).toBeUndefined()
  })

  it('refuses a file with an unknown column before writing anything', async () => {
    const tag = randomUUID().slice(0, 8)
    const file = await csv(['external_id,name,e-mail', `shop-${tag},Mio,mio.${tag}@example.com`])
    const result = await cli(['import', 'customers', file])
    expect(result.code).toBe(1)
    expect(result.stderr).toContain('unknown column "e-mail"')
    expect(await customerWith('online_customer', `shop-${tag}`)).toBeUndefined()
  })
})
