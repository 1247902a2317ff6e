import { type Kysely, sql } from 'kysely'

/**
 * Legacy card numbers are now read with Unicode NFKC (src/customers/identity-values.ts
 * readCode): a card a register linked while its scanner typed through the IME in full-width mode
 * was stored as "Ｌ１２３" and would no longer be found by its scan, now read as "L123". Stored
 * ones take that form, unless another legacy card has it already or would take it too (the same
 * card bound twice: which customer holds it is the operator's call). Those left as they were are
 * counted on the console with their identity and customer ids (never the numbers), for the
 * operator to resolve (README, "Legacy cards left in full width"). Tombstones are hex: kept.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    with read as (
      select id, btrim(normalize(value, NFKC)) as value from identity where kind = 'legacy_card'
    ),
    lone as (select value from read group by value having count(*) = 1)
    update identity i set value = read.value
    from read join lone using (value)
    where i.id = read.id and i.value <> read.value
  `.execute(db)
  const { rows: left } = await sql<{ id: string; customer_id: string }>`
    select id, customer_id from identity
    where kind = 'legacy_card' and value <> btrim(normalize(value, NFKC))
    order by customer_id, id
  `.execute(db)
  if (left.length === 0) return
  const list = left.map((r) => `identity ${r.id} (customer ${r.customer_id})`).join(', ')
  console.warn(
    `normalise-legacy-card-width: ${left.length} legacy cards left as they were, in full width ` +
      'or with spaces around, because another legacy card has or would take the form a scan ' +
      `reads (a scan of the card finds the other one, or neither): ${list}. See README, ` +
      '"Legacy cards left in full width", to resolve them.',
  )
}

export async function down(): Promise<void> {
  // Which numbers were typed in full width is not known any more; they stay.
}
