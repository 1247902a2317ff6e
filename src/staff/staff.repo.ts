import type { Db } from '../platform/db.ts'

/** The store a staff member logs in to (shown in the page header). */
export async function findStoreById(db: Db, id: string) {
  return db
    .selectFrom('store')
    .select(['id', 'code', 'name'])
    .where('id', '=', id)
    .executeTakeFirst()
}

/**
 * Whether a staff session may still be used: its key is not revoked and it was not logged out.
 * One query, both primary-key lookups, because it runs on every staff request.
 */
export async function isStaffSessionLive(db: Db, keyId: string, sessionId: string) {
  const row = await db
    .selectFrom('api_key')
    .select('api_key.id')
    .where('api_key.id', '=', keyId)
    .where('api_key.revoked_at', 'is', null)
    .where(({ not, exists, selectFrom }) =>
      not(
        exists(
          selectFrom('staff_session_end')
            .select('staff_session_end.session_id')
            .where('staff_session_end.session_id', '=', sessionId),
        ),
      ),
    )
    .executeTakeFirst()
  return row !== undefined
}

/**
 * Records a session as logged out (again is a no-op), and deletes the records of sessions that
 * have expired by now: their cookies are refused on expiry alone.
 */
export async function endStaffSession(db: Db, sessionId: string, expiresAt: Date, now: Date) {
  await db
    .insertInto('staff_session_end')
    .values({ session_id: sessionId, expires_at: expiresAt })
    .onConflict((oc) => oc.column('session_id').doNothing())
    .execute()
  await db.deleteFrom('staff_session_end').where('expires_at', '<=', now).execute()
}
