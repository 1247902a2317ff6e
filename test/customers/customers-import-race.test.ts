import { randomUUID } from 'node:crypto'
import { sql, type Transaction } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type Env, loadEnv } from '../../src/config/env.ts'
import { findCustomerByIdentity } from '../../src/customers/customer-lookup.service.ts'
import { attachIdentity } from '../../src/customers/merge.service.ts'
import { createDb, type Database, type DB } from '../../src/platform/db.ts'
import { legacyCardNumber } from '../purchases/fixtures.ts'
import { cli } from '../support/cli.ts'
import { TEST_DATABASE_URL } from '../support/env.ts'
import { tempFiles } from '../support/files.ts'
import { heldTransaction, lockWaitOn } from '../support/locks.ts'
import { cardNumber, createCustomer, identityValuesOf } from './factories.ts'

// The import decides from what the customers holding a row's ids have (a shop account, a LINE
// account) whether to attach or merge. An account link or a card linked at the register that
// commits while the import works on the row must not leave it acting on what it read before:
// each race is forced by holding that other transaction open until the import waits for it.

let db: Database
let env: Env
let file: Awaited<ReturnType<typeof tempFiles>>
beforeAll(async () => {
  env = loadEnv({ DATABASE_URL: TEST_DATABASE_URL })
  db = await createDb(env, { poolSize: 4 })
  file = await tempFiles('customers-race')
})
afterAll(async () => {
  await db.destroy()
})

/** `kizuna import customers` of these CSV lines, as a process of its own. */
const importCsv = async (lines: string[]) => cli(['import', 'customers', await file('csv', lines)])

/** What an account link does to the LINE friend's customer (in the caller's transaction). */
const linkShopAccount = (trx: Transaction<DB>, customerId: string, account: string) =>
  attachIdentity(trx, customerId, 'online_customer', account, { env, reason: 'account-link' })

/**
 * The file's shop account is a customer of its own, not the LINE friend who linked another one
 * meanwhile (two shop accounts are never one customer), and the import said why the email was
 * left off.
 */
async function expectApart(
  result: { stdout: string; stderr: string },
  friendId: string,
  tag: string,
) {
  expect(await shopAccountsOf(friendId)).toEqual([`web-${tag}`])
  const imported = await findCustomerByIdentity(db, 'online_customer', `shop-${tag}`)
  expect(imported).toBeDefined()
  expect(imported).not.toBe(friendId)
  expect(result.stderr).toMatch(
    /^line 2: warning: email: held by a customer with another external_id/m,
  )
  expect(result.stdout).toContain('created 1, updated 0, unchanged 0, skipped 0')
}

const shopAccountsOf = (customerId: string) => identityValuesOf(db, customerId, 'online_customer')

const mergedInto = async (customerId: string) =>
  (
    await db
      .selectFrom('customer')
      .select('merged_into_id')
      .where('id', '=', customerId)
      .executeTakeFirstOrThrow()
  ).merged_into_id

describe('kizuna import customers while an account link or a register changes its customers', () => {
  it('leaves the email off when its holder links another shop account meanwhile', async () => {
    const tag = randomUUID().slice(0, 8)
    const email = `nao.${tag}@example.com`
    // A LINE friend who gave this email; the file's shop account would join them.
    const friend = await createCustomer(db, {
      line: true,
      email,
      identities: [{ kind: 'email', value: email }],
    })
    // Meanwhile the friend links their own shop account in LINE (the account link's attach).
    const linking = await heldTransaction(db, async (trx) => {
      await linkShopAccount(trx, friend.id, `web-${tag}`)
    })
    const importing = importCsv(['external_id,email,name', `shop-${tag},${email},Nao`])
    await lockWaitOn(db, 'customer')
    linking.commit()
    await linking.committed
    await expectApart(await importing, friend.id, tag)
    expect(await findCustomerByIdentity(db, 'email', email)).toBe(friend.id)
  })

  it('waits for the customer its email moved to while it waited, then sees what they have', async () => {
    const tag = randomUUID().slice(0, 8)
    const email = `sae.${tag}@example.com`
    const legacy = legacyCardNumber()
    const shopper = await createCustomer(db, {
      email,
      identities: [
        { kind: 'email', value: email },
        { kind: 'legacy_card', value: legacy },
      ],
    })
    const friend = await createCustomer(db, { line: true })
    // The register links the shopper's plastic card to the LINE friend: the shopper, email and
    // all, is merged into them. The import waits for that.
    const merging = await heldTransaction(db, async (trx) => {
      await attachIdentity(trx, friend.id, 'legacy_card', legacy, { env, reason: 'scan' })
    })
    const importing = importCsv(['external_id,email,name', `shop-${tag},${email},Sae`])
    await lockWaitOn(db, 'customer')
    // The friend's account link queues behind the merge for the friend's row.
    const linking = heldTransaction(db, async (trx) => {
      await linkShopAccount(trx, friend.id, `web-${tag}`)
    })
    await lockWaitOn(db, 'customer', 2)
    merging.commit()
    await merging.committed
    const linked = await linking
    // The import, now holding the shopper, finds the email on the friend and waits for them.
    await lockWaitOn(db, 'customer')
    linked.commit()
    await linked.committed
    await expectApart(await importing, friend.id, tag)
    expect(await mergedInto(shopper.id)).toBe(friend.id)
  })

  it('never merges two shop accounts when the row’s legacy card is linked to another member meanwhile', async () => {
    const tag = randomUUID().slice(0, 8)
    const email = `rin.${tag}@example.com`
    const legacy = legacyCardNumber()
    // The email's holder has a shop account; so does the LINE friend who links the card.
    const shopper = await createCustomer(db, {
      email,
      identities: [
        { kind: 'online_customer', value: `shop-${tag}` },
        { kind: 'email', value: email },
      ],
    })
    const member = await createCustomer(db, {
      line: true,
      identities: [
        { kind: 'online_customer', value: `web-${tag}` },
        { kind: 'member_card', value: cardNumber() },
      ],
    })
    // The register links the plastic card to the member; it commits once the import waits.
    const linking = await heldTransaction(db, async (trx) => {
      await attachIdentity(trx, member.id, 'legacy_card', legacy, { env, reason: 'scan' })
    })
    const importing = importCsv(['email,name,legacy_card', `${email},Rin,${legacy}`])
    await lockWaitOn(db, 'identity')
    linking.commit()
    await linking.committed
    const result = await importing

    expect(await mergedInto(shopper.id)).toBeNull()
    expect(await shopAccountsOf(member.id)).toEqual([`web-${tag}`])
    expect(await shopAccountsOf(shopper.id)).toEqual([`shop-${tag}`])
    // As if the link had committed first: the card names the member, the email is left off.
    expect(await findCustomerByIdentity(db, 'legacy_card', legacy)).toBe(member.id)
    expect(await findCustomerByIdentity(db, 'email', email)).toBe(shopper.id)
    expect(result.stderr).toMatch(
      /^line 2: warning: email: held by a customer with another external_id/m,
    )
    expect(result.stdout).toContain('created 0, updated 1, unchanged 0, skipped 0')
  })
})

/**
 * A register binding `card` to `memberId` (`inserted` once it has, uncommitted) that, once told
 * (`grab`), also wants `customerId`'s row: an import holding that row and waiting for the card
 * deadlocks with it. This transaction looks for a deadlock only after 60 s, so Postgres aborts
 * the import's (which looks first); `grab` resolves once this one holds the row. `end` commits
 * or rolls back.
 */
function cardLinkThatDeadlocks(card: string, memberId: string, customerId: string) {
  const signal = () => {
    let fire!: () => void
    const fired = new Promise<void>((resolve) => {
      fire = resolve
    })
    return { fire, fired }
  }
  const [inserted, told, holding] = [signal(), signal(), signal()]
  let end!: (commit: boolean) => void
  const ended = new Promise<boolean>((resolve) => {
    end = resolve
  })
  class RolledBack extends Error {}
  const done = db
    .transaction()
    .execute(async (trx) => {
      await sql`set local deadlock_timeout = '60s'`.execute(trx)
      await trx
        .insertInto('identity')
        .values({ customer_id: memberId, kind: 'legacy_card', value: card })
        .execute()
      inserted.fire()
      await told.fired
      await sql`select id from customer where id = ${customerId} for update`.execute(trx)
      holding.fire()
      if (!(await ended)) throw new RolledBack()
    })
    .catch((error: unknown) => {
      if (!(error instanceof RolledBack)) throw error
    })
  return {
    inserted: inserted.fired,
    grab: async () => {
      told.fire()
      await holding.fired
    },
    end: async (commit: boolean) => {
      end(commit)
      await done
    },
  }
}

/** The import's row waits for a card another transaction is binding (its insert). */
const importWaitsForCard = () => lockWaitOn(db, 'on conflict')

/**
 * A shopper with an email, a member, and a register binding a card to the member (uncommitted),
 * while `kizuna import customers` runs a file whose second row names the shopper's email and the
 * card, between two rows of new customers. The import's connection looks for a deadlock after
 * 2 s (the register's after 60 s).
 */
async function importRacingRegister(name: string) {
  const tag = randomUUID().slice(0, 8)
  const email = `${name.toLowerCase()}.${tag}@example.com`
  const card = legacyCardNumber()
  const shopper = await createCustomer(db, { email, identities: [{ kind: 'email', value: email }] })
  const member = await createCustomer(db, {
    identities: [{ kind: 'member_card', value: cardNumber() }],
  })
  const register = cardLinkThatDeadlocks(card, member.id, shopper.id)
  await register.inserted
  const lines = [
    'external_id,email,name,legacy_card',
    `first-${tag},,First,`,
    `,${email},${name},${card}`,
    `last-${tag},,Last,`,
  ]
  const importing = cli(['import', 'customers', await file('csv', lines)], {
    PGOPTIONS: '-c deadlock_timeout=2s',
  })
  return { tag, email, card, shopper, member, register, importing }
}

describe('kizuna import customers when a row deadlocks with a register', () => {
  it('tries the row again, keeps the rows before it and goes on with the rest', async () => {
    const { tag, email, card, shopper, member, register, importing } =
      await importRacingRegister('Aoi')
    // The row holds the shopper (the email's holder) and waits for the card the register binds.
    await importWaitsForCard()
    try {
      await register.grab() // the deadlock: the import's row is rolled back, the register goes on
    } finally {
      await register.end(true)
    }
    const result = await importing

    expect(result.stderr).toBe('')
    expect(result.code).toBe(0)
    expect(result.stdout).toContain('created 2, updated 1, unchanged 0, skipped 0')
    expect(await findCustomerByIdentity(db, 'online_customer', `first-${tag}`)).toBeDefined()
    expect(await findCustomerByIdentity(db, 'online_customer', `last-${tag}`)).toBeDefined()
    // Tried again after the register's commit: the card names the member, the email joins them.
    expect(await findCustomerByIdentity(db, 'legacy_card', card)).toBe(member.id)
    expect(await findCustomerByIdentity(db, 'email', email)).toBe(member.id)
    expect(await mergedInto(shopper.id)).toBe(member.id)
  })

  it('reports the row by line after three deadlocks, and goes on with the rest', async () => {
    const scene = await importRacingRegister('Ren')
    const { tag, card, shopper, member, importing } = scene
    let register = scene.register
    try {
      for (let attempt = 1; attempt <= 3; attempt++) {
        await importWaitsForCard()
        await register.grab()
        if (attempt === 3) break
        // The row, tried again, waits for the shopper, and the next register for the card: this
        // register rolls back, the next one binds the card first, and the row waits for it again.
        await lockWaitOn(db, 'for update of c')
        const next = cardLinkThatDeadlocks(card, member.id, shopper.id)
        await lockWaitOn(db, 'identity', 2)
        await register.end(false)
        await next.inserted
        register = next
      }
    } finally {
      await register.end(false)
    }
    const result = await importing

    expect(result.code).toBe(2) // rows skipped
    expect(result.stderr).toMatch(/^line 3: \(row\): .*deadlock.*run the import again/m)
    expect(result.stdout).toContain('created 2, updated 0, unchanged 0, skipped 1')
    expect(await findCustomerByIdentity(db, 'online_customer', `first-${tag}`)).toBeDefined()
    expect(await findCustomerByIdentity(db, 'online_customer', `last-${tag}`)).toBeDefined()
    expect(await findCustomerByIdentity(db, 'legacy_card', card)).toBeUndefined()
    expect(await mergedInto(shopper.id)).toBeNull()
  })
})
