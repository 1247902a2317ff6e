import { sql } from 'kysely'
import { attachWaitingPurchases } from '../customers/merge.service.ts'
import type { Db } from '../platform/db.ts'
import { isConnectionError } from '../platform/errors.ts'
import type { PurchaseEnv } from './purchase.service.ts'

/** Purchases waiting for an identity its holder could not be given (their attach failed). */
export type StrandedFailure = { customerId: string; kind: string; error: unknown }

/**
 * Gives customers the purchases that still wait for an identity they already hold. An order
 * recorded while its shop id or email was being attached (an import row, an account link) sees
 * neither the other's uncommitted identity nor is seen by it, and waited for good; the nightly
 * refresh attaches it (points credited, stats updated; attachWaitingPurchases, as the attach of
 * the identity would have), one identity per transaction. Reads the unmatched purchases once (a
 * scan of `purchase`, nightly). One identity whose attach fails is left for the next run and
 * reported in `failed`, the others go on (the nightly's spend refresh runs after); Postgres
 * going away (or unable to write) stops it.
 */
export async function attachStrandedPurchases(
  db: Db,
  env: PurchaseEnv,
): Promise<{ attached: number; failed: StrandedFailure[] }> {
  const { rows } = await sql<{ customer_id: string; kind: string; value: string }>`
    select i.customer_id, i.kind, i.value
    from purchase p join identity i
      on i.kind = p.pending_identity_kind and i.value = p.pending_identity_value
    where p.customer_id is null
    union
    select i.customer_id, i.kind, i.value
    from purchase p join identity i on i.kind = 'email' and i.value = p.pending_email
    where p.customer_id is null and p.pending_email is not null`.execute(db)
  let attached = 0
  const failed: StrandedFailure[] = []
  for (const r of rows) {
    try {
      attached += await db
        .transaction()
        .execute((trx) =>
          attachWaitingPurchases(trx, env, r.customer_id, { kind: r.kind, value: r.value }),
        )
    } catch (error) {
      if (isConnectionError(error)) throw error
      failed.push({ customerId: r.customer_id, kind: r.kind, error })
    }
  }
  return { attached, failed }
}
