import { sql, type Transaction } from 'kysely'
import { describe, expect, it } from 'vitest'
import { lockLineUid } from '../../src/identity/identity.repo.ts'
import { lockAttempts } from '../../src/linking/link-code-limits.ts'
import { LOCK_SPACES, type LockSpace, lockInSpace } from '../../src/platform/advisory-locks.ts'
import type { DB } from '../../src/platform/db.ts'
import { heldTask, heldTransaction } from '../support/locks.ts'
import { testDb } from '../support/test-db.ts'

// Each kind of advisory lock has a key space of its own: a lock on a LINE user never waits on
// (or stands for) a lock on link attempts, the weekly cap or a task whose key is the same text.

const db = testDb()

type Lock = (trx: Transaction<DB>, key: string) => Promise<void>

/** Takes `lock` on `key` in a transaction that gives up after 1 s of waiting: whether it got it. */
async function takes(lock: Lock, key: string): Promise<boolean> {
  return db()
    .transaction()
    .execute(async (trx) => {
      await sql`set local lock_timeout = '1s'`.execute(trx)
      await lock(trx, key)
      return true
    })
    .catch((error: unknown) => {
      if ((error as { code?: string }).code === '55P03') return false
      throw error
    })
}

/** Whether `second` on `key` is granted while another transaction holds `first` on it. */
async function grantedBeside(first: Lock, second: Lock, key: string): Promise<boolean> {
  const held = await heldTransaction(db(), (trx) => first(trx, key))
  try {
    return await takes(second, key)
  } finally {
    held.commit()
    await held.committed
  }
}

describe('advisory locks', () => {
  const key = () => `U${crypto.randomUUID().replaceAll('-', '')}`

  it('makes a second lock of the same kind on the same key wait', async () => {
    expect(await grantedBeside(lockLineUid, lockLineUid, key())).toBe(false)
    expect(await grantedBeside(lockAttempts, lockAttempts, key())).toBe(false)
  })

  it('does not make a LINE user lock and a link-attempts lock on the same key wait', async () => {
    expect(await grantedBeside(lockLineUid, lockAttempts, key())).toBe(true)
    expect(await grantedBeside(lockAttempts, lockLineUid, key())).toBe(true)
  })

  it('does not make a LINE user lock wait for a task of the same name', async () => {
    const name = key()
    const task = await heldTask(db(), name)
    try {
      expect(await takes(lockLineUid, name)).toBe(true)
    } finally {
      task.release()
      await task.ended
    }
  })
})

describe('LOCK_SPACES', () => {
  it('gives every kind of lock a space of its own', async () => {
    const spaces = Object.keys(LOCK_SPACES) as LockSpace[]
    expect(new Set(Object.values(LOCK_SPACES)).size).toBe(spaces.length)
    const key = crypto.randomUUID()
    for (const first of spaces) {
      for (const second of spaces) {
        const granted = await grantedBeside(
          (trx, k) => lockInSpace(trx, first, k),
          (trx, k) => lockInSpace(trx, second, k),
          key,
        )
        expect([first, second, granted]).toEqual([first, second, first !== second])
      }
    }
  })
})
