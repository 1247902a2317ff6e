import { sql } from 'kysely'
import type { Db } from './db.ts'

/**
 * Every kind of transaction-level advisory lock, each with a key space of its own: the first key
 * of Postgres's two-key form, the second a hash of the locked thing's key. Locks of two kinds
 * never wait on each other (nor stand for each other), whatever their keys. The one-key form is
 * withTaskLock's alone (task-lock.ts), so it meets none of these either.
 */
export const LOCK_SPACES = {
  /** Every change to one LINE user (lockLineUid). */
  lineUser: 0x6b7a6c75,
  /** The wrong codes counted for an address or a LINE account while linking (lockAttempts). */
  linkAttempts: 0x6b7a6c61,
  /** The weekly marketing cap of a customer (claimDeliveriesWithMarketingCounts). */
  marketingCap: 0x6b7a6361,
  /** Every consent write of a customer, so its history reads the value it replaces (upsertConsentRows). */
  consent: 0x6b7a636f,
} as const

export type LockSpace = keyof typeof LOCK_SPACES

/** Holds `key` of the kind `space` until the caller's transaction ends. */
export async function lockInSpace(trx: Db, space: LockSpace, key: string): Promise<void> {
  await sql`select pg_advisory_xact_lock(${LOCK_SPACES[space]}, hashtext(${key}))`.execute(trx)
}
