import { createHash, timingSafeEqual } from 'node:crypto'
import type { Database } from './db.ts'

const cache = new WeakMap<Database, Map<string, Promise<string>>>()

/** A signing key generated inside the database at first migration (e.g. `tokens`). */
export function getAppSecret(db: Database, name: string): Promise<string> {
  let byName = cache.get(db)
  if (!byName) {
    byName = new Map()
    cache.set(db, byName)
  }
  let value = byName.get(name)
  if (!value) {
    value = db
      .selectFrom('app_secret')
      .select('value')
      .where('name', '=', name)
      .executeTakeFirstOrThrow(() => new Error(`app secret ${name} is missing: run migrations`))
      .then((r) => r.value)
    value.catch(() => byName?.delete(name))
    byName.set(name, value)
  }
  return value
}

/**
 * Whether two secrets are equal, in a time that tells a guesser nothing: both are hashed first,
 * so neither how far they match nor how long they are changes how long the comparison takes.
 */
export function sameSecret(a: string, b: string): boolean {
  return timingSafeEqual(digest(a), digest(b))
}

function digest(value: string): Buffer {
  return createHash('sha256').update(value).digest()
}
