import { type Kysely, sql } from 'kysely'

/** LINE account link: link tokens, email one-time codes, nonces, active links and their audit. */
export async function up(db: Kysely<any>): Promise<void> {
  // A LINE link token we issued (stored hashed) and whose LINE account it is for.
  await db.schema
    .createTable('link_token')
    .addColumn('token_hash', 'text', (col) => col.primaryKey())
    .addColumn('line_user_id', 'uuid', (col) => col.notNull().references('line_user.id'))
    .addColumn('expires_at', 'timestamptz', (col) => col.notNull())
    .addColumn('created_at', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
    .execute()

  // One-time codes sent by email to prove the online account (code stored as an HMAC).
  await db.schema
    .createTable('link_code')
    .addColumn('id', 'uuid', (col) => col.primaryKey().defaultTo(sql`gen_random_uuid()`))
    .addColumn('link_token_hash', 'text', (col) => col.notNull())
    .addColumn('email', 'text', (col) => col.notNull())
    .addColumn('code_hash', 'text', (col) => col.notNull())
    .addColumn('attempts', 'integer', (col) => col.notNull().defaultTo(0))
    .addColumn('expires_at', 'timestamptz', (col) => col.notNull())
    .addColumn('verified_at', 'timestamptz')
    .addColumn('created_at', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
    .execute()
  await db.schema
    .createIndex('link_code_email_created_at_idx')
    .on('link_code')
    .columns(['email', 'created_at'])
    .execute()
  await db.schema
    .createIndex('link_code_link_token_hash_created_at_idx')
    .on('link_code')
    .columns(['link_token_hash', 'created_at'])
    .execute()

  // The nonce handed to LINE (stored as sha256): single use, 10 minutes.
  await db.schema
    .createTable('link_nonce')
    .addColumn('nonce_hash', 'text', (col) => col.primaryKey())
    .addColumn('link_token_hash', 'text', (col) => col.notNull())
    .addColumn('line_user_id', 'uuid', (col) => col.notNull().references('line_user.id'))
    .addColumn('customer_id', 'uuid', (col) => col.references('customer.id'))
    .addColumn('identity_kind', 'text', (col) =>
      col.notNull().check(sql`identity_kind in ('email', 'online_customer')`),
    )
    .addColumn('identity_value', 'text')
    .addColumn('status', 'text', (col) =>
      col.notNull().defaultTo('issued').check(sql`status in ('issued', 'used', 'failed')`),
    )
    .addColumn('expires_at', 'timestamptz', (col) => col.notNull())
    .addColumn('used_at', 'timestamptz')
    .addColumn('created_at', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
    .execute()

  // A LINE account linked to an online account; at most one active link per LINE account.
  await db.schema
    .createTable('account_link')
    .addColumn('id', 'uuid', (col) => col.primaryKey().defaultTo(sql`gen_random_uuid()`))
    .addColumn('line_user_id', 'uuid', (col) => col.notNull().references('line_user.id'))
    .addColumn('customer_id', 'uuid', (col) => col.notNull().references('customer.id'))
    .addColumn('identity_kind', 'text', (col) => col.notNull())
    .addColumn('linked_at', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
    .addColumn('unlinked_at', 'timestamptz')
    .addColumn('unlinked_to_customer_id', 'uuid', (col) => col.references('customer.id'))
    .execute()
  await sql`create unique index account_link_line_user_id_key on account_link (line_user_id)
    where unlinked_at is null`.execute(db)

  // What happened, without personal data.
  await db.schema
    .createTable('link_audit')
    .addColumn('id', 'uuid', (col) => col.primaryKey().defaultTo(sql`gen_random_uuid()`))
    .addColumn('action', 'text', (col) => col.notNull())
    .addColumn('line_user_id', 'uuid', (col) => col.references('line_user.id'))
    .addColumn('customer_id', 'uuid', (col) => col.references('customer.id'))
    .addColumn('detail', 'jsonb', (col) => col.notNull().defaultTo(sql`'{}'::jsonb`))
    .addColumn('created_at', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
    .execute()
  await db.schema
    .createIndex('link_audit_line_user_id_idx')
    .on('link_audit')
    .column('line_user_id')
    .execute()

  // The sandbox mailbox: mail "sent" when SMTP_URL is unset on a sandbox run (/sandbox/mail).
  await db.schema
    .createTable('sandbox_mail')
    .addColumn('id', 'uuid', (col) => col.primaryKey().defaultTo(sql`gen_random_uuid()`))
    .addColumn('from_address', 'text', (col) => col.notNull())
    .addColumn('to_address', 'text', (col) => col.notNull())
    .addColumn('subject', 'text', (col) => col.notNull())
    .addColumn('text', 'text', (col) => col.notNull())
    .addColumn('created_at', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
    .execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('sandbox_mail').execute()
  await db.schema.dropTable('link_audit').execute()
  await db.schema.dropTable('account_link').execute()
  await db.schema.dropTable('link_nonce').execute()
  await db.schema.dropTable('link_code').execute()
  await db.schema.dropTable('link_token').execute()
}
