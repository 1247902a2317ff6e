import type { lineArrays, PurchaseLine } from './purchase.repo.ts'

/**
 * A recorded purchase's lines as its row keeps them, under lineArrays' names (line_skus as skus,
 * line_quantities as quantities, line_unit_prices as unitPrices): line i + 1 at index i.
 */
export type RecordedLines = Pick<
  ReturnType<typeof lineArrays>,
  'skus' | 'quantities' | 'unitPrices'
>

/**
 * How the lines of a sale sent again under a recorded id differ from the recorded ones (the
 * first difference: "LAMP-2 at 1000 yen: 2 recorded, 4 sent"), or null: the same goods. The one
 * definition of "the same lines", for a register's receipt (replayOf) and an online order
 * (changedField); asked only of a sale sent again, never on a first one.
 *
 * The same goods are the same quantity of each sku at each unit price. The order of the lines
 * and how they are grouped are not part of the sale: a register or shop that rebuilds the body
 * from its own records (an offline queue, an export sorted otherwise) may list them in another
 * order, or one lamp twice rather than two lamps once, and a 409 would have staff record the same
 * sale again under a new id (earning its points twice). Names are labels, not what was sold.
 * Skus compare as stored (trimmed, case and width kept), as the catalogue and follow-ups match
 * them. Other skus, quantities or prices at the same total are another sale: answered as a
 * replay, its lines would be dropped while the sender thinks they were recorded.
 */
export function linesChange(recorded: RecordedLines, sent: readonly PurchaseLine[]): string | null {
  const tally = new Map<string, { sku: string; price: number; recorded: number; sent: number }>()
  const add = (sku: string, price: number, side: 'recorded' | 'sent', quantity: number) => {
    const key = `${price}\u0000${sku}`
    const t = tally.get(key) ?? { sku, price, recorded: 0, sent: 0 }
    t[side] += quantity
    tally.set(key, t)
  }
  recorded.skus.forEach((sku, i) => {
    add(sku, recorded.unitPrices[i] ?? 0, 'recorded', recorded.quantities[i] ?? 0)
  })
  for (const line of sent) add(line.sku, line.unitPrice, 'sent', line.quantity)
  for (const t of tally.values()) {
    if (t.recorded !== t.sent) {
      return `${t.sku} at ${t.price} yen: ${t.recorded} recorded, ${t.sent} sent`
    }
  }
  return null
}
