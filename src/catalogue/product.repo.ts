import { sql } from 'kysely'
import type { Db } from '../platform/db.ts'
import { OPTIONAL_PRODUCT_FIELDS, type ProductImport } from './product.schemas.ts'

type Field = (typeof OPTIONAL_PRODUCT_FIELDS)[number]

/**
 * Upserts products by sku; rows that would not change are left alone. A field left out
 * (undefined) keeps the stored value (a new product has none: null, `[]`); null clears it.
 * Returns how many were inserted and how many updated. The last of duplicate skus in one call
 * wins, whole.
 */
export async function upsertProducts(
  db: Db,
  products: ProductImport[],
): Promise<{ inserted: number; updated: number }> {
  const bySku = new Map(products.map((p) => [p.sku, p]))
  // One statement per set of fields given (a CSV file's rows all give the same ones).
  const groups = new Map<string, { fields: Field[]; products: ProductImport[] }>()
  for (const p of bySku.values()) {
    const fields = OPTIONAL_PRODUCT_FIELDS.filter((f) => p[f] !== undefined)
    const key = fields.join(',')
    const group = groups.get(key) ?? { fields, products: [] }
    group.products.push(p)
    groups.set(key, group)
  }
  let inserted = 0
  let updated = 0
  for (const group of groups.values()) {
    const counts = await upsertGiven(db, group.products, group.fields)
    inserted += counts.inserted
    updated += counts.updated
  }
  return { inserted, updated }
}

/** Upserts products that all give `fields` (and name); the others are left as stored. */
async function upsertGiven(db: Db, products: ProductImport[], fields: Field[]) {
  const given = ['name', ...fields] as const
  const rows = await db
    .insertInto('product')
    .values(
      products.map((p) => ({
        sku: p.sku,
        name: p.name,
        category: p.category ?? null,
        price: p.price ?? null,
        image_url: p.image_url ?? null,
        related_skus: p.related_skus ?? [],
        warranty_months: p.warranty_months ?? null,
      })),
    )
    .onConflict((oc) =>
      oc
        .column('sku')
        .doUpdateSet((eb) => ({
          ...Object.fromEntries(given.map((f) => [f, eb.ref(`excluded.${f}`)])),
          updated_at: sql`now()`,
        }))
        .where(
          sql<boolean>`(${sql.join(given.map((f) => sql.ref(`product.${f}`)))}) is distinct from
            (${sql.join(given.map((f) => sql.ref(`excluded.${f}`)))})`,
        ),
    )
    .returning(sql<boolean>`xmax = 0`.as('inserted'))
    .execute()
  const inserted = rows.filter((r) => r.inserted).length
  return { inserted, updated: rows.length - inserted }
}
