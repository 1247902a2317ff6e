import type { Db } from '../platform/db.ts'
import { findMemberSummary } from './pos.repo.ts'
import type { ScanResponse } from './pos.schemas.ts'

/** The member as the register shows them: name, tier, points and usable coupons. */
export async function memberSummary(db: Db, customerId: string): Promise<ScanResponse['customer']> {
  return toSummary(await findMemberSummary(db, customerId))
}

/** A summary row (findMemberSummary's) as the register is answered. */
export function toSummary(row: {
  id: string
  display_name: string | null
  tier: string
  points: number
  coupons: { code: string; title: string; discount_yen: number; expires_at: string | Date | null }[]
}): ScanResponse['customer'] {
  return {
    id: row.id,
    displayName: row.display_name,
    tier: row.tier,
    points: row.points,
    coupons: row.coupons.map((c) => ({
      code: c.code,
      title: c.title,
      discountYen: c.discount_yen,
      expiresAt: c.expires_at === null ? null : new Date(c.expires_at).toISOString(),
    })),
  }
}
