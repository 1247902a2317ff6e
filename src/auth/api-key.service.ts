import { createHash, randomBytes } from 'node:crypto'
import { sql } from 'kysely'
import type { Database, Db } from '../platform/db.ts'
import { AppError } from '../platform/errors.ts'
import { oneLineSchema } from '../platform/input.ts'
import { executePrepared } from '../platform/prepared.ts'

export const SCOPES = ['pos', 'import', 'admin'] as const
export type Scope = (typeof SCOPES)[number]

/** A key's note, shown in a cell of `keys list` (tab-separated, a key a line). */
export const apiKeyLabelSchema = oneLineSchema()
  .min(1, 'give a label, or leave --label out')
  .max(100, 'at most 100 characters')

/** Keys look like `kz_<8 prefix chars>_<secret>`; only a SHA-256 of the whole key is stored. */
const KEY_PATTERN = /^kz_([0-9a-f]{8})_[A-Za-z0-9_-]{32,}$/

export function hashKey(key: string): string {
  return createHash('sha256').update(key).digest('hex')
}

function liveKeysWithPrefix(db: Db, prefix: string) {
  return db
    .selectFrom('api_key')
    .select('id')
    .where('prefix', '=', prefix)
    .where('revoked_at', 'is', null)
}

/** How many prefixes createApiKey draws before giving up (odds of a taken one: live keys / 2^32). */
const PREFIX_DRAWS = 5

/**
 * Creates a key whose prefix no live key has: `keys revoke` finds a key by its prefix, and would
 * refuse a prefix two live keys share. `drawPrefix` is for tests, to force a taken prefix.
 */
export async function createApiKey(
  db: Db,
  opts: { storeId: string | null; scopes: Scope[]; label?: string },
  drawPrefix: () => string = () => randomBytes(4).toString('hex'),
): Promise<{ id: string; key: string }> {
  for (let draw = 0; draw < PREFIX_DRAWS; draw++) {
    const prefix = drawPrefix()
    // Two creations at the same instant drawing the same prefix could still both take it;
    // `keys revoke` then takes the whole key.
    const taken = await liveKeysWithPrefix(db, prefix).executeTakeFirst()
    if (taken) continue
    const key = `kz_${prefix}_${randomBytes(24).toString('base64url')}`
    const row = await db
      .insertInto('api_key')
      .values({
        store_id: opts.storeId,
        scopes: opts.scopes,
        label: opts.label ?? null,
        prefix,
        key_hash: hashKey(key),
      })
      .returning('id')
      .executeTakeFirstOrThrow()
    return { id: row.id, key }
  }
  throw new Error(`API key: no prefix free after ${PREFIX_DRAWS} draws; none created`)
}

/**
 * Every request of a register uses the same key: updating its row each time made every scan
 * wait on that row's lock and an extra commit, so the time is only refreshed once a minute. Its
 * age is the database's to judge (authenticate's `stale`, and again here for two requests at
 * once): the server's clock, compared with a time now() wrote, made a server ahead of Postgres
 * send this UPDATE at every request and one behind leave the time stale for as long as it lagged.
 */
async function touchKey(db: Db, id: string): Promise<void> {
  await db
    .updateTable('api_key')
    .set({ last_used_at: sql`now()` })
    .where('id', '=', id)
    .where((eb) =>
      eb.or([
        eb('last_used_at', 'is', null),
        eb('last_used_at', '<', sql<Date>`now() - interval '1 minute'`),
      ]),
    )
    .execute()
}

type KeyRow = { id: string; store_id: string | null; scopes: string[]; stale: boolean }

export type Caller = { keyId: string; storeId: string | null; scopes: Scope[] }

/** Resolves a bearer key: 401 for a missing, unknown or revoked key; 403 without the scope. */
export async function authenticate(
  db: Db,
  authorization: string | undefined,
  scope: Scope,
): Promise<Caller> {
  const key = authorization?.match(/^Bearer\s+(\S+)$/i)?.[1]
  if (!key) throw new AppError('UNAUTHORIZED', 'send an API key: Authorization: Bearer <key>')
  if (!KEY_PATTERN.test(key)) throw new AppError('UNAUTHORIZED', 'this API key is not valid')
  // Every register request runs it: prepared once per connection instead of parsed each time.
  const { rows } = await executePrepared<KeyRow>(
    db,
    sql`select id, store_id, scopes,
        last_used_at is null or last_used_at < now() - interval '1 minute' as stale
      from api_key where key_hash = ${hashKey(key)} and revoked_at is null`,
  )
  const row = rows[0]
  if (!row) throw new AppError('UNAUTHORIZED', 'this API key is not valid')
  const scopes = row.scopes as Scope[]
  if (!scopes.includes(scope)) {
    throw new AppError('FORBIDDEN', `this API key lacks the "${scope}" scope`)
  }
  if (row.stale) await touchKey(db, row.id)
  return { keyId: row.id, storeId: row.store_id, scopes }
}

/** Whether a key still works (sessions opened with a key end when it is revoked). */
export async function isKeyActive(db: Db, keyId: string): Promise<boolean> {
  const row = await db
    .selectFrom('api_key')
    .select('id')
    .where('id', '=', keyId)
    .where('revoked_at', 'is', null)
    .executeTakeFirst()
  return row !== undefined
}

export type KeySummary = {
  prefix: string
  storeCode: string | null
  scopes: string[]
  label: string | null
  createdAt: Date
  lastUsedAt: Date | null
  revokedAt: Date | null
}

/** Every key, newest first, without its hash: what `kizuna keys list` shows. */
export async function listApiKeys(db: Db): Promise<KeySummary[]> {
  const rows = await db
    .selectFrom('api_key')
    .leftJoin('store', 'store.id', 'api_key.store_id')
    .select([
      'api_key.prefix',
      'store.code',
      'api_key.scopes',
      'api_key.label',
      'api_key.created_at',
      'api_key.last_used_at',
      'api_key.revoked_at',
    ])
    .orderBy('api_key.created_at', 'desc')
    .execute()
  return rows.map((r) => ({
    prefix: r.prefix,
    storeCode: r.code,
    scopes: r.scopes,
    label: r.label,
    createdAt: r.created_at,
    lastUsedAt: r.last_used_at,
    revokedAt: r.revoked_at,
  }))
}

/** A key given whole, or its prefix (the 8 characters after `kz_`, as `keys list` shows them). */
export type KeyRef = { key: string } | { prefix: string }

/** The prefix of a well-formed key; undefined for anything else (a key cut short, a typo). */
export function prefixOfKey(key: string): string | undefined {
  return key.match(KEY_PATTERN)?.[1]
}

/**
 * Revokes one live key: requests with it are refused from then on, and staff pages opened with
 * it end. Given whole, the key is found by its hash; given a prefix, only when one live key has
 * it. Throws NOT_FOUND when no live key matches, CONFLICT when several have the prefix (then
 * nothing is revoked). Returns the key's prefix.
 */
export async function revokeApiKey(db: Database, ref: KeyRef): Promise<string> {
  if ('key' in ref) {
    const row = await db
      .updateTable('api_key')
      .set({ revoked_at: sql`now()` })
      .where('key_hash', '=', hashKey(ref.key))
      .where('revoked_at', 'is', null)
      .returning('prefix')
      .executeTakeFirst()
    if (row) return row.prefix
    // Named by its prefix alone: the secret is never echoed, as an error may end up in a log.
    const prefix = prefixOfKey(ref.key)
    const given = prefix ? `kz_${prefix}_… given` : 'key given'
    throw new AppError('NOT_FOUND', `no live API key is the ${given}; none revoked`)
  }
  const { prefix } = ref
  await db.transaction().execute(async (trx) => {
    const live = await liveKeysWithPrefix(trx, prefix).forUpdate().execute()
    if (live.length === 0) throw new AppError('NOT_FOUND', `no live API key starts kz_${prefix}_`)
    if (live.length > 1) {
      throw new AppError(
        'CONFLICT',
        `${live.length} live API keys start kz_${prefix}_; none revoked. ` +
          'Pass the whole key to revoke one of them',
      )
    }
    await trx
      .updateTable('api_key')
      .set({ revoked_at: sql`now()` })
      .where('id', '=', live[0]?.id ?? '')
      .execute()
  })
  return prefix
}
