import { sql } from 'kysely'
import { copyConsents } from '../consent/consent.service.ts'
import type { Db } from '../platform/db.ts'

/** Fills the customer's contact email from a verified link, keeping one already there. */
export async function setCustomerEmailIfEmpty(trx: Db, customerId: string, email: string) {
  await trx
    .updateTable('customer')
    .set({ email, updated_at: sql`now()` })
    .where('id', '=', customerId)
    .where('email', 'is', null)
    .execute()
}

/**
 * Moves a LINE account (its line_user row and `line` identity) from its customer to a new
 * customer of its own, which starts with the old one's consent rows (never more consent than
 * the person gave) and the name of the LINE profile. Everything else stays, the old customer's
 * name too: it may be the shop's (a customer import overwrites it), which is the online
 * account's, not the LINE account's. The profile was fetched once for the LINE user and is not
 * fetched again for the new customer, so its name is taken from the row here (null until a
 * fetch still under way saves it, which then names the customer the row has now). Returns the
 * new id.
 */
export async function moveLineAccountToNewCustomer(
  trx: Db,
  lineUser: { id: string; line_uid: string; customer_id: string },
): Promise<string> {
  await trx
    .selectFrom('customer')
    .select('id')
    .where('id', '=', lineUser.customer_id)
    .forUpdate()
    .executeTakeFirstOrThrow()
  const profile = await trx
    .selectFrom('line_user')
    .select('display_name')
    .where('id', '=', lineUser.id)
    .executeTakeFirstOrThrow()
  const created = await trx
    .insertInto('customer')
    .values({
      display_name: profile.display_name,
      display_name_from_line: profile.display_name !== null,
    })
    .returning('id')
    .executeTakeFirstOrThrow()
  await copyConsents(trx, lineUser.customer_id, created.id)
  await trx
    .updateTable('line_user')
    .set({ customer_id: created.id })
    .where('id', '=', lineUser.id)
    .execute()
  await trx
    .updateTable('identity')
    .set({ customer_id: created.id })
    .where('kind', '=', 'line')
    .where('value', '=', lineUser.line_uid)
    .execute()
  return created.id
}
