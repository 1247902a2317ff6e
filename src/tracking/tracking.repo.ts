import { sql } from 'kysely'
import type { Db } from '../platform/db.ts'

export type DeliveryEventKind = 'open' | 'click' | 'unsubscribe'

/**
 * Records an event of a delivery that exists (a token for a delivery that does not records
 * nothing). One unsubscribe per delivery: a repeat is ignored. Returns whether a row was written.
 */
export async function insertDeliveryEvent(
  db: Db,
  event: { deliveryId: string; kind: DeliveryEventKind; url?: string },
): Promise<boolean> {
  const result = await sql`
    insert into delivery_event (delivery_id, kind, url)
    select d.id, ${event.kind}, ${event.url ?? null}::text from delivery d
    where d.id = ${event.deliveryId}
    on conflict do nothing`.execute(db)
  return Number(result.numAffectedRows ?? 0) > 0
}
