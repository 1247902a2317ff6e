import { randomUUID } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { purgeLinkRows } from '../../src/maintenance/purge-link-rows.jobs.ts'
import { createCustomer } from '../customers/factories.ts'
import { startTestKizuna, type TestKizuna } from '../support/harness.ts'
import { eventually } from '../support/wait.ts'

// Account-link rows hold emails and shop account ids: codes (the address they went to), nonces
// (the proven email or shop account id) and link tokens. Once expired they are purged nightly,
// whether or not anyone asks for a code (a shop-login run never does; a quiet server neither).
let k: TestKizuna
beforeAll(async () => {
  k = await startTestKizuna()
})
afterAll(async () => {
  await k?.stopAll()
})

const DAY = 86_400_000

/** A friend's line_user id, for the rows' foreign keys. */
async function lineUserId(): Promise<string> {
  const { id } = await createCustomer(k.deps.db, { line: true })
  const row = await k.deps.db
    .selectFrom('line_user')
    .select('id')
    .where('customer_id', '=', id)
    .executeTakeFirstOrThrow()
  return row.id
}

/** A link token, a code and a nonce that expired `ageMs` ago, naming `tag`. */
async function linkRows(tag: string, ageMs: number) {
  const expiresAt = new Date(Date.now() - ageMs)
  const tokenHash = `purge-${tag}`
  await k.deps.db
    .insertInto('link_token')
    .values({ token_hash: tokenHash, line_user_id: await lineUserId(), expires_at: expiresAt })
    .execute()
  await k.deps.db
    .insertInto('link_code')
    .values({
      link_token_hash: tokenHash,
      email: `${tag}@example.jp`,
      code_hash: 'x',
      expires_at: expiresAt,
    })
    .execute()
  const { line_user_id } = await k.deps.db
    .selectFrom('link_token')
    .select('line_user_id')
    .where('token_hash', '=', tokenHash)
    .executeTakeFirstOrThrow()
  await k.deps.db
    .insertInto('link_nonce')
    .values({
      nonce_hash: `purge-${tag}`,
      link_token_hash: tokenHash,
      line_user_id,
      identity_kind: 'online_customer',
      identity_value: `SHOP-${tag}`,
      expires_at: expiresAt,
    })
    .execute()
  return tokenHash
}

/** What is left of the rows under a link token. */
async function left(tokenHash: string) {
  const db = k.deps.db
  const [tokens, codes, nonces] = await Promise.all([
    db.selectFrom('link_token').select('token_hash').where('token_hash', '=', tokenHash).execute(),
    db.selectFrom('link_code').select('email').where('link_token_hash', '=', tokenHash).execute(),
    db
      .selectFrom('link_nonce')
      .select('identity_value')
      .where('link_token_hash', '=', tokenHash)
      .execute(),
  ])
  return {
    tokens: tokens.length,
    codes: codes.map((c) => c.email),
    nonces: nonces.map((n) => n.identity_value),
  }
}

describe('maintenance.purge-link-rows', () => {
  it('purges rows a day past expiry, keeps younger ones, and changes nothing when run again', async () => {
    const tag = randomUUID().slice(0, 8)
    const old = await linkRows(`old-${tag}`, 3 * DAY)
    const young = await linkRows(`young-${tag}`, 60 * 60_000)
    // As the scheduler would: the job, taken by the test's worker.
    await k.deps.queues.enqueueBulk('maintenance.purge-link-rows', [
      { data: {}, jobId: `purge-link-rows-${tag}` },
    ])
    await eventually(async () =>
      expect(await left(old)).toEqual({ tokens: 0, codes: [], nonces: [null] }),
    )
    const youngRows = {
      tokens: 1,
      codes: [`young-${tag}@example.jp`],
      nonces: [`SHOP-young-${tag}`],
    }
    expect(await left(young)).toEqual(youngRows)
    // Again (a second worker, a retry): nothing more changes.
    await purgeLinkRows.run(k.deps, {}, undefined as never)
    expect(await left(old)).toEqual({ tokens: 0, codes: [], nonces: [null] })
    expect(await left(young)).toEqual(youngRows)
  })
})
