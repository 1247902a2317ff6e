import { type Expression, sql } from 'kysely'
import { ERASED_PATTERN } from '../identity/tombstone.ts'
import type { Db } from '../platform/db.ts'

// ---- link tokens -------------------------------------------------------------------------

export async function insertLinkToken(
  db: Db,
  row: { tokenHash: string; lineUserId: string; expiresAt: Date },
): Promise<void> {
  await db
    .insertInto('link_token')
    .values({ token_hash: row.tokenHash, line_user_id: row.lineUserId, expires_at: row.expiresAt })
    .onConflict((oc) => oc.column('token_hash').doNothing())
    .execute()
}

/**
 * A link token, whether its LINE user was erased since (the user id is a tombstone) and whether
 * that LINE account is linked to an online account now.
 */
export async function findLinkToken(db: Db, tokenHash: string) {
  return db
    .selectFrom('link_token')
    .innerJoin('line_user', 'line_user.id', 'link_token.line_user_id')
    .select((eb) => [
      'link_token.line_user_id',
      'link_token.expires_at',
      sql<boolean>`line_user.line_uid like ${ERASED_PATTERN}`.as('erased'),
      eb
        .exists(activeLinkOf(db, eb.ref('link_token.line_user_id')).select('account_link.id'))
        .as('linked'),
    ])
    .where('link_token.token_hash', '=', tokenHash)
    .executeTakeFirst()
}

// ---- one-time codes ------------------------------------------------------------------------

/**
 * Codes sent since `since` to an address, for a link token, or for a LINE account (through its
 * link tokens): those whose email was not sent too (withdrawLinkCode keeps them).
 */
export async function countCodesSince(
  db: Db,
  by: { email: string } | { linkTokenHash: string } | { lineUserId: string },
  since: Date,
): Promise<number> {
  const row = await db
    .selectFrom('link_code')
    .select((eb) => eb.fn.countAll<string>().as('n'))
    .where('created_at', '>', since)
    .$call((qb) =>
      'email' in by
        ? qb.where('email', '=', by.email)
        : 'linkTokenHash' in by
          ? qb.where('link_token_hash', '=', by.linkTokenHash)
          : qb.where('link_token_hash', 'in', tokensOf(db, by.lineUserId)),
    )
    .executeTakeFirstOrThrow()
  return Number(row.n)
}

/** The hashes of a LINE account's link tokens. */
const tokensOf = (db: Db, lineUserId: string) =>
  db.selectFrom('link_token').select('token_hash').where('line_user_id', '=', lineUserId)

/**
 * Wrong codes entered for an email address, from a LINE account (through its link tokens), or
 * both (that account on that address), in codes sent since `since`: every attempt but the one
 * that verified a code. The codes are kept a day past expiry (purgeExpiredLinkRows), so a window
 * of up to a day sees them all.
 */
export async function countWrongCodesSince(
  db: Db,
  by: { email: string; lineUserId?: string } | { email?: string; lineUserId: string },
  since: Date,
): Promise<number> {
  const row = await db
    .selectFrom('link_code')
    .select(sql<string>`coalesce(sum(attempts - (verified_at is not null)::int), 0)::int8`.as('n'))
    .where('created_at', '>', since)
    .$if(by.email !== undefined, (qb) => qb.where('email', '=', by.email ?? ''))
    .$if(by.lineUserId !== undefined, (qb) =>
      qb.where('link_token_hash', 'in', tokensOf(db, by.lineUserId ?? '')),
    )
    .executeTakeFirstOrThrow()
  return Number(row.n)
}

export async function insertLinkCode(
  db: Db,
  row: { id: string; linkTokenHash: string; email: string; codeHash: string; expiresAt: Date },
): Promise<void> {
  await db
    .insertInto('link_code')
    .values({
      id: row.id,
      link_token_hash: row.linkTokenHash,
      email: row.email,
      code_hash: row.codeHash,
      expires_at: row.expiresAt,
    })
    .execute()
}

/**
 * A code whose email was not sent: expired as of `at` (the time it was asked for), so it can no
 * longer be entered, and kept, so it still counts toward the limits on codes mailed.
 */
export async function withdrawLinkCode(db: Db, id: string, at: Date): Promise<void> {
  await db.updateTable('link_code').set({ expires_at: at }).where('id', '=', id).execute()
}

export async function findLinkCode(db: Db, id: string) {
  return db.selectFrom('link_code').selectAll().where('id', '=', id).executeTakeFirst()
}

/** Uses up one attempt on a live code; undefined when none is left (locked, expired, used). */
export async function spendCodeAttempt(
  db: Db,
  q: { id: string; linkTokenHash: string; now: Date; maxAttempts: number },
) {
  return db
    .updateTable('link_code')
    .set({ attempts: sql`attempts + 1` })
    .where('id', '=', q.id)
    .where('link_token_hash', '=', q.linkTokenHash)
    .where('verified_at', 'is', null)
    .where('expires_at', '>', q.now)
    .where('attempts', '<', q.maxAttempts)
    .returningAll()
    .executeTakeFirst()
}

export async function markCodeVerified(db: Db, id: string, now: Date): Promise<boolean> {
  const result = await db
    .updateTable('link_code')
    .set({ verified_at: now })
    .where('id', '=', id)
    .where('verified_at', 'is', null)
    .executeTakeFirst()
  return Number(result.numUpdatedRows) === 1
}

/**
 * Drops codes, tokens and nonces a day past expiry (they hold emails and shop account ids; keep
 * them briefly), nightly (maintenance.purge-link-rows); idempotent. The daily cap on wrong codes
 * (countWrongCodesSince) counts the codes kept: keep them at least a day. Returns the counts.
 */
export async function purgeExpiredLinkRows(
  db: Db,
  now: Date,
): Promise<{ codes: number; tokens: number; nonces: number }> {
  const before = new Date(now.getTime() - 86_400_000)
  const codes = await db.deleteFrom('link_code').where('expires_at', '<', before).executeTakeFirst()
  const tokens = await db
    .deleteFrom('link_token')
    .where('expires_at', '<', before)
    .executeTakeFirst()
  const nonces = await db
    .updateTable('link_nonce')
    .set({ identity_value: null })
    .where('expires_at', '<', before)
    .where('identity_value', 'is not', null)
    .executeTakeFirst()
  return {
    codes: Number(codes.numDeletedRows),
    tokens: Number(tokens.numDeletedRows),
    nonces: Number(nonces.numUpdatedRows),
  }
}

// ---- nonces --------------------------------------------------------------------------------

export type NewNonce = {
  nonceHash: string
  linkTokenHash: string
  lineUserId: string
  customerId: string | null
  identityKind: 'email' | 'online_customer'
  identityValue: string
  expiresAt: Date
  /** The shop login's assertion it is issued for (single use); none for an emailed code. */
  assertionHash?: string
}

/** False (nothing written) when a nonce was already issued for the same assertion. */
export async function insertNonce(db: Db, n: NewNonce): Promise<boolean> {
  const inserted = await db
    .insertInto('link_nonce')
    .values({
      nonce_hash: n.nonceHash,
      link_token_hash: n.linkTokenHash,
      line_user_id: n.lineUserId,
      customer_id: n.customerId,
      identity_kind: n.identityKind,
      identity_value: n.identityValue,
      expires_at: n.expiresAt,
      assertion_hash: n.assertionHash ?? null,
    })
    .onConflict((oc) => oc.column('assertion_hash').doNothing())
    .returning('nonce_hash')
    .executeTakeFirst()
  return inserted !== undefined
}

export async function lockNonce(trx: Db, nonceHash: string) {
  return trx
    .selectFrom('link_nonce')
    .selectAll()
    .where('nonce_hash', '=', nonceHash)
    .forUpdate()
    .executeTakeFirst()
}

/** Ends a nonce for good; its identity value is dropped with it. */
export async function finishNonce(
  trx: Db,
  nonceHash: string,
  status: 'used' | 'failed',
  now: Date,
): Promise<void> {
  await trx
    .updateTable('link_nonce')
    .set({ status, used_at: now, identity_value: null })
    .where('nonce_hash', '=', nonceHash)
    .execute()
}

// ---- active links and audit ---------------------------------------------------------------

/**
 * The LINE account's active link (account_link_line_user_id_key: one at most): the one definition
 * of "linked to an online account" (LINE account link, LINE-API.md §6), which the menu segment
 * (`linked`: richmenu-segment.repo.ts), the help's Unlink button, the link and the unlink all
 * read. An identity alone (a shop customer id from an import or an order) is no link: the
 * shopper never linked, and has nothing to unlink.
 */
export function activeLinkOf(db: Db, lineUserId: string | Expression<string>) {
  return db
    .selectFrom('account_link')
    .where('account_link.line_user_id', '=', lineUserId)
    .where('account_link.unlinked_at', 'is', null)
}

export async function lockActiveLink(trx: Db, lineUserId: string) {
  return activeLinkOf(trx, lineUserId).selectAll().forUpdate().executeTakeFirst()
}

export async function insertAccountLink(
  trx: Db,
  row: { lineUserId: string; customerId: string; identityKind: string; linkedAt: Date },
): Promise<void> {
  await trx
    .insertInto('account_link')
    .values({
      line_user_id: row.lineUserId,
      customer_id: row.customerId,
      identity_kind: row.identityKind,
      linked_at: row.linkedAt,
    })
    .execute()
}

export async function markUnlinked(
  trx: Db,
  id: string,
  toCustomerId: string,
  now: Date,
): Promise<void> {
  await trx
    .updateTable('account_link')
    .set({ unlinked_at: now, unlinked_to_customer_id: toCustomerId })
    .where('id', '=', id)
    .execute()
}

export type LinkAction = 'link' | 'link-conflict' | 'link-failed' | 'link-rejected' | 'unlink'

export async function insertLinkAudit(
  db: Db,
  row: {
    action: LinkAction
    lineUserId?: string | null
    customerId?: string | null
    detail?: Record<string, unknown>
  },
): Promise<void> {
  await db
    .insertInto('link_audit')
    .values({
      action: row.action,
      line_user_id: row.lineUserId ?? null,
      customer_id: row.customerId ?? null,
      detail: JSON.stringify(row.detail ?? {}),
    })
    .execute()
}

export async function findLinkedCustomer(db: Db, lineUserId: string) {
  return activeLinkOf(db, lineUserId).select(['id', 'customer_id']).executeTakeFirst()
}
