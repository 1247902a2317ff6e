import type { Db } from '../platform/db.ts'

/**
 * Notes the email an unmatched order waits for besides the shop's customer id (recordPurchase
 * stores one pending identity); `trx` is the one that recorded the purchase.
 */
export async function setPendingEmail(trx: Db, purchaseId: string, email: string): Promise<void> {
  await trx
    .updateTable('purchase')
    .set({ pending_email: email })
    .where('id', '=', purchaseId)
    .where('customer_id', 'is', null)
    .execute()
}
