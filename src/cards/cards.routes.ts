import { Hono } from 'hono'
import type { Deps } from '../platform/deps.ts'
import { AppError } from '../platform/errors.ts'
import type { AppEnv } from '../platform/http.ts'
import { renderEan13Png } from './barcode.ts'
import { verifyCardToken } from './card-token.ts'
import { findLiveMemberCardById } from './cards.repo.ts'

/** Caches may keep the image at most a day, and never past the token's expiry. */
const MAX_CACHE_SECONDS = 86_400

/** `GET /cards/:token/barcode.png`: the member card's EAN-13 barcode for the Flex card. */
export function cardRoutes(deps: Pick<Deps, 'db' | 'clock'>) {
  return new Hono<AppEnv>().get('/:token/barcode.png', async (c) => {
    const now = deps.clock.now()
    const check = await verifyCardToken(deps.db, c.req.param('token'), now)
    if (!check.ok) {
      throw check.reason === 'expired'
        ? new AppError('GONE', 'this member-card link has expired: open the card again in LINE')
        : new AppError('NOT_FOUND', 'unknown member-card link')
    }
    const card = await findLiveMemberCardById(deps.db, check.identityId)
    if (!card) throw new AppError('NOT_FOUND', 'this member card no longer exists')
    const png = await renderEan13Png(card.value)
    const left = Math.floor((check.expiresAt.getTime() - now.getTime()) / 1000)
    return c.body(new Uint8Array(png), 200, {
      'content-type': 'image/png',
      'cache-control': `private, max-age=${Math.max(0, Math.min(MAX_CACHE_SECONDS, left))}`,
      'x-content-type-options': 'nosniff',
    })
  })
}
