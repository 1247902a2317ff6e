import type { Database } from '../platform/db.ts'
import { upsertProducts } from './product.repo.ts'
import { OPTIONAL_PRODUCT_FIELDS, type ProductImport } from './product.schemas.ts'

/**
 * Saves a batch of products in one transaction (upsert by sku). `columns`, a CSV file's header
 * (null for NDJSON): a field of a column the file has but whose cell is empty (left out by the
 * reader) is cleared; one of a column it does not have is left as stored.
 */
export async function saveProducts(
  db: Database,
  products: ProductImport[],
  columns: readonly string[] | null = null,
) {
  const cleared = OPTIONAL_PRODUCT_FIELDS.filter((field) => columns?.includes(field))
  const rows =
    cleared.length === 0
      ? products
      : products.map((p) => {
          const row: ProductImport = { ...p }
          for (const field of cleared) if (row[field] === undefined) row[field] = null
          return row
        })
  return db.transaction().execute((trx) => upsertProducts(trx, rows))
}
