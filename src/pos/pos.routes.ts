import { Hono } from 'hono'
import { type KeyEnv, requireKey } from '../auth/require-key.ts'
import { AppError } from '../platform/errors.ts'
import { jsonInput, parseInput, pathPartOf } from '../platform/input.ts'
import { findStoreCodeById } from './pos.repo.ts'
import { scanBodySchema, voidParamsSchema } from './pos.schemas.ts'
import { type PosDeps, type PosStore, scan, voidReceipt } from './pos.service.ts'

export const POS_MAX_BYTES = 256 * 1024

/**
 * Register API with a store's Bearer key (scope pos): `POST /api/pos/scans` and
 * `POST /api/pos/receipts/:receiptId/void`.
 */
export function posRoutes(deps: PosDeps) {
  // Store codes never change: one lookup per store and process.
  const storeCodes = new Map<string, string>()
  async function storeOf(storeId: string | null): Promise<PosStore> {
    if (!storeId) throw new AppError('FORBIDDEN', 'this API key does not belong to a store')
    let code = storeCodes.get(storeId)
    if (!code) {
      code = await findStoreCodeById(deps.db, storeId)
      if (!code) throw new AppError('FORBIDDEN', "this API key's store no longer exists")
      storeCodes.set(storeId, code)
    }
    return { id: storeId, code }
  }

  const app = new Hono<KeyEnv>().post('/scans', requireKey(deps.db, 'pos'), async (c) => {
    const store = await storeOf(c.get('caller').storeId)
    return c.json(await scan(deps, store, await jsonInput(c, scanBodySchema, POS_MAX_BYTES)), 200)
  })

  // Takes a recorded receipt back (a return at the register, a mistake): see voidPurchase.
  app.post('/receipts/:receiptId/void', requireKey(deps.db, 'pos'), async (c) => {
    const store = await storeOf(c.get('caller').storeId)
    const params = parseInput(voidParamsSchema, { receiptId: voidPathReceiptId(c.req.url) })
    return c.json(await voidReceipt(deps, store, params.receiptId), 200)
  })
  return app
}

/**
 * The `:receiptId` of a `…/receipts/:receiptId/void` path, decoded once and strictly: one that is
 * not percent-encoded UTF-8 (`%E0%A4%A`) is a 400 naming receiptId, not a lookup of it as typed.
 */
export function voidPathReceiptId(url: string): string {
  return pathPartOf(url, -2, 'receiptId')
}
