import type { Db } from '../platform/db.ts'
import { findPurchaseByKey } from './purchase.repo.ts'

/**
 * The purchase recorded once per (channel, source, externalId), if it is: what a replay is
 * checked against before anything is written for it.
 */
export function findRecordedPurchase(
  db: Db,
  key: { channel: 'store' | 'online'; source: string; externalId: string },
) {
  return findPurchaseByKey(db, key)
}
