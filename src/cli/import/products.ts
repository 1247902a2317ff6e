import { type ProductImport, productImportSchema } from '../../catalogue/product.schemas.ts'
import { saveProducts } from '../../catalogue/product.service.ts'
import type { Database } from '../../platform/db.ts'
import { startProgress, summary } from './progress.ts'
import { formatOf, openRecords } from './read-records.ts'
import { parseRow } from './rows.ts'

const BATCH = 500

/** `kizuna import products FILE.csv|FILE.ndjson`: upsert by sku in batches; bad rows skipped. */
export async function importProductsFile(db: Database, file: string): Promise<void> {
  const source = await openRecords(file, formatOf(file, ['csv', 'ndjson']))
  const tally = { created: 0, updated: 0, unchanged: 0, skipped: 0 }
  const progress = startProgress(source.size, source.bytesRead)
  let batch: ProductImport[] = []
  const flush = async () => {
    if (batch.length === 0) return
    const distinct = new Set(batch.map((p) => p.sku)).size
    const { inserted, updated } = await saveProducts(db, batch)
    tally.created += inserted
    tally.updated += updated
    tally.unchanged += distinct - inserted - updated
    batch = []
  }
  try {
    for await (const items of source.records)
      for (const item of items) {
        progress.tick()
        const product = parseRow(productImportSchema, item)
        if (!product) {
          tally.skipped++
          continue
        }
        batch.push(product)
        if (batch.length >= BATCH) await flush()
      }
    await flush()
  } finally {
    progress.stop()
  }
  console.log(`products: ${summary(tally)}`)
}
