import type { Kysely } from 'kysely'
import { up as normalisePhones } from './20261208T150000-normalise-phone-country-code.ts'

/**
 * 20261208T150000 again (its statements, run once more): from then until the phone rule changed
 * (20261226), "81-90-1234-5678" (a spreadsheet dropped the +) and "+ 81 90…" were stored as
 * "819012345678"; they are now read as the domestic "09012345678", so a stored old form would no
 * longer match the same number sent again (a second customer, a lookup answering 404). Stored ones
 * take the new form, as then; one whose new form another identity already holds is left as it is
 * (merging two customers is the operator's call).
 */
export async function up(db: Kysely<any>): Promise<void> {
  await normalisePhones(db)
}

export async function down(): Promise<void> {
  // "090…" cannot be told apart from a number typed without +81; they stay.
}
