import { sql } from 'kysely'
import type { Db } from '../platform/db.ts'
import type { ProductImport } from './product.schemas.ts'

/**
 * Upserts products by sku; rows that would not change are left alone. Returns how many were
 * inserted and how many updated. The last of duplicate skus in one call wins.
 */
export async function upsertProducts(
  db: Db,
  products: ProductImport[],
): Promise<{ inserted: number; updated: number }> {
  const bySku = new Map(products.map((p) => [p.sku, p]))
  if (bySku.size === 0) return { inserted: 0, updated: 0 }
  const rows = await db
    .insertInto('product')
    .values(
      [...bySku.values()].map((p) => ({
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
          name: eb.ref('excluded.name'),
          category: eb.ref('excluded.category'),
          price: eb.ref('excluded.price'),
          image_url: eb.ref('excluded.image_url'),
          related_skus: eb.ref('excluded.related_skus'),
          warranty_months: eb.ref('excluded.warranty_months'),
          updated_at: sql`now()`,
        }))
        .where(
          sql<boolean>`(product.name, product.category, product.price, product.image_url,
            product.related_skus, product.warranty_months) is distinct from
            (excluded.name, excluded.category, excluded.price, excluded.image_url,
            excluded.related_skus, excluded.warranty_months)`,
        ),
    )
    .returning(sql<boolean>`xmax = 0`.as('inserted'))
    .execute()
  const inserted = rows.filter((r) => r.inserted).length
  return { inserted, updated: rows.length - inserted }
}
