import { type Kysely, sql } from 'kysely'

/**
 * The line arrays' check, as strict as the old purchase_line columns were: `0 < all(…)` is null,
 * not false, for an array holding a null, and a check passes on null, so quantities and prices
 * could hold nulls. Now no element of the sku, quantity or price arrays may be null, and each
 * array has one dimension.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`alter table purchase drop constraint purchase_lines_check,
    add constraint purchase_lines_check check (
      cardinality(line_names) = cardinality(line_skus)
      and cardinality(line_quantities) = cardinality(line_skus)
      and cardinality(line_unit_prices) = cardinality(line_skus)
      and coalesce(array_ndims(line_skus), 1) = 1 and coalesce(array_ndims(line_names), 1) = 1
      and coalesce(array_ndims(line_quantities), 1) = 1
      and coalesce(array_ndims(line_unit_prices), 1) = 1
      and array_position(line_skus, null) is null
      and array_position(line_quantities, null) is null
      and array_position(line_unit_prices, null) is null
      and 0 < all (line_quantities) and 0 <= all (line_unit_prices))`.execute(db)
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`alter table purchase drop constraint purchase_lines_check,
    add constraint purchase_lines_check check (
      cardinality(line_names) = cardinality(line_skus)
      and cardinality(line_quantities) = cardinality(line_skus)
      and cardinality(line_unit_prices) = cardinality(line_skus)
      and array_position(line_skus, null) is null
      and 0 < all (line_quantities) and 0 <= all (line_unit_prices))`.execute(db)
}
