import { randomUUID } from 'node:crypto'
import type { Database } from '../../src/platform/db.ts'

/** A delivery row (an email intent) to hang tracking events on. */
export async function createDelivery(
  db: Database,
  customerId: string,
  category: 'transactional' | 'marketing' = 'marketing',
): Promise<string> {
  const row = await db
    .insertInto('delivery')
    .values({
      dedupe_key: `test-tracking:${randomUUID()}`,
      kind: 'campaign',
      category,
      customer_id: customerId,
      template_id: 'test-template',
      vars: JSON.stringify({}),
    })
    .returning('id')
    .executeTakeFirstOrThrow()
  return row.id
}

export const eventsOf = (db: Database, deliveryId: string) =>
  db
    .selectFrom('delivery_event')
    .select(['kind', 'url'])
    .where('delivery_id', '=', deliveryId)
    .orderBy('created_at')
    .execute()
