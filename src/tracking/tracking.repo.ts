import { sql } from 'kysely'
import type { Db } from '../platform/db.ts'

export type DeliveryEventKind = 'open' | 'click' | 'unsubscribe'

/**
 * Records an event of a delivery that exists (a token for a delivery that does not records
 * nothing). One open and one unsubscribe per delivery (unique indexes): a repeat is ignored, so
 * a mail shown again, forwarded or fetched by a proxy in a loop counts one open. Returns whether
 * a row was written.
 * A click in the email of an erased customer is counted without its URL, as the erasure left
 * their earlier clicks (the link may have been made for them: their name, their member page);
 * for a click the customer row is key-share locked, so a click racing the erasure (which holds
 * it for update) is either recorded before it, and blanked by it, or waits and sees it. Opens and
 * unsubscribes store nothing of the person and take no lock (an email blast's opens would
 * otherwise each write a lock onto the customer row and wait behind its merges).
 */
export async function insertDeliveryEvent(
  db: Db,
  event: { deliveryId: string; kind: DeliveryEventKind; url?: string },
): Promise<boolean> {
  const result =
    event.url === undefined
      ? await sql`
          insert into delivery_event (delivery_id, kind)
          select d.id, ${event.kind} from delivery d where d.id = ${event.deliveryId}
          on conflict do nothing`.execute(db)
      : await sql`
          insert into delivery_event (delivery_id, kind, url)
          select d.id, ${event.kind}, case when c.erased_at is null then ${event.url}::text end
          from delivery d join customer c on c.id = d.customer_id
          where d.id = ${event.deliveryId}
          for key share of c
          on conflict do nothing`.execute(db)
  return Number(result.numAffectedRows ?? 0) > 0
}
