import type { TestKizuna } from '../support/harness.ts'

/**
 * A LINE friend known to Kizuna (customer, identity, line_user) whose profile was never fetched
 * and no job queued for it; the LINE stand-in answers their profile with `displayName`.
 */
export async function profilelessFriend(k: TestKizuna, displayName: string) {
  const user = k.line.users.create({ displayName })
  user.friendship = 'friend'
  return k.deps.db.transaction().execute(async (trx) => {
    const customer = await trx
      .insertInto('customer')
      .defaultValues()
      .returning('id')
      .executeTakeFirstOrThrow()
    await trx
      .insertInto('identity')
      .values({ customer_id: customer.id, kind: 'line', value: user.userId })
      .execute()
    const lineUser = await trx
      .insertInto('line_user')
      .values({
        customer_id: customer.id,
        line_uid: user.userId,
        status: 'friend',
        status_changed_at: new Date(),
        followed_at: new Date(),
      })
      .returningAll()
      .executeTakeFirstOrThrow()
    return { user, lineUser }
  })
}
