import { type Kysely, sql } from 'kysely'

/**
 * Legacy card numbers are now read with Unicode NFKC (src/customers/identity-values.ts
 * readCode): a card a register linked while its scanner typed through the IME in full-width mode
 * was stored as "Ｌ１２３" and would no longer be found by its scan, now read as "L123". Stored
 * ones take that form, unless another legacy card has it already or would take it too (the same
 * card bound twice: which customer holds it is the operator's call). Tombstones are hex: kept.
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
}

export async function down(): Promise<void> {
  // Which numbers were typed in full width is not known any more; they stay.
}
