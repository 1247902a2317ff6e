import type { Db } from '../platform/db.ts'
import { invalidField } from '../platform/errors.ts'
import { findSourceSpellings, insertOrderSource } from './order-source.repo.ts'

/**
 * Why an order may not name `source`: its name is recorded in other letter case, and `shopify`
 * next to `Shopify` would record the same order twice, its points given twice. null: recorded
 * so, or new. Reads only.
 */
export async function sourceRefusal(db: Db, source: string): Promise<string | null> {
  const spellings = await findSourceSpellings(db, source)
  return spellings && !spellings.includes(source) ? speltOtherwise(spellings) : null
}

function speltOtherwise(spellings: string[]): string {
  const recorded = spellings.map((s) => `"${s}"`).join(' or ')
  return (
    `orders of this shop system are recorded as ${recorded}: the same name in other letter ` +
    'case is another source, which would record them again; use it as recorded'
  )
}

/**
 * Takes `source` for an order recorded in `trx`: a new one is noted (its first spelling is then
 * the only one taken); one whose name is recorded in other letter case is a 400 naming `source`.
 * One index probe an order; a new source, an insert too, which waits for another transaction
 * noting the same name meanwhile.
 */
export async function acceptOrderSource(trx: Db, source: string): Promise<void> {
  let spellings = await findSourceSpellings(trx, source)
  if (!spellings) {
    if (await insertOrderSource(trx, source)) return
    // Noted by another transaction, committed while this one waited for it.
    spellings = await findSourceSpellings(trx, source)
    if (!spellings) throw new Error('order source conflict without a row')
  }
  if (!spellings.includes(source)) throw invalidField('source', speltOtherwise(spellings))
}
