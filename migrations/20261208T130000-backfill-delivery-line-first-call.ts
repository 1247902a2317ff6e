import { type Kysely, sql } from 'kysely'

/**
 * Pushes tried before `line_first_call_at` existed have no first-call time, so a failed one
 * would count as never sent and go again under a key LINE may have forgotten (24 hours):
 * twice. Every LINE delivery already tried takes its creation time, no later than its first
 * call: at worst one is held back that was still safe to send.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    update delivery set line_first_call_at = created_at
    where line_first_call_at is null and channel = 'line' and attempts > 0
      and status <> 'sent'
  `.execute(db)
}

export async function down(): Promise<void> {
  // The times filled in cannot be told from recorded ones; they stay.
}
