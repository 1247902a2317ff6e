import type { Db } from '../platform/db.ts'

/** The store a staff member logs in to (shown in the page header). */
export async function findStoreById(db: Db, id: string) {
  return db
    .selectFrom('store')
    .select(['id', 'code', 'name'])
    .where('id', '=', id)
    .executeTakeFirst()
}

/** Whether a staff session was logged out (a primary-key lookup, on every staff request). */
export async function isStaffSessionEnded(db: Db, sessionId: string): Promise<boolean> {
  const row = await db
    .selectFrom('staff_session_end')
    .select('session_id')
    .where('session_id', '=', sessionId)
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
