import type { Database } from '../platform/db.ts'
import { upsertProducts } from './product.repo.ts'
import type { ProductImport } from './product.schemas.ts'

/** Saves a batch of products in one transaction; each row is the whole product (upsert by sku). */
export async function saveProducts(db: Database, products: ProductImport[]) {
  return db.transaction().execute((trx) => upsertProducts(trx, products))
}
