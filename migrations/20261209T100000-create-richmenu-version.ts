import { type Kysely, sql } from 'kysely'

/**
 * Rich menus (richmenus/<name>/): one row per deployed content of a menu folder. A folder whose
 * menu.json or image changes gets a new version (LINE cannot replace a menu's image); the old one
 * is retired once its users are linked to the new one. `line_user.richmenu_version_id` is the
 * menu Kizuna last linked to that person, so re-linking only touches those whose menu differs.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('richmenu_version')
    .addColumn('id', 'uuid', (col) => col.primaryKey().defaultTo(sql`gen_random_uuid()`))
    .addColumn('name', 'text', (col) => col.notNull())
    .addColumn('content_hash', 'text', (col) => col.notNull())
    .addColumn('segments', sql`text[]`, (col) => col.notNull())
    .addColumn('alias', 'text')
    .addColumn('is_default', 'boolean', (col) => col.notNull().defaultTo(false))
    .addColumn('line_rich_menu_id', 'text')
    .addColumn('created_at', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
    .addColumn('deployed_at', 'timestamptz')
    .addColumn('retired_at', 'timestamptz')
    .addUniqueConstraint('richmenu_version_name_content_hash_key', ['name', 'content_hash'])
    .execute()
  await db.schema
    .alterTable('line_user')
    .addColumn('richmenu_version_id', 'uuid', (col) => col.references('richmenu_version.id'))
    .addColumn('richmenu_linked_at', 'timestamptz')
    .execute()
  await db.schema
    .createIndex('line_user_richmenu_version_id_idx')
    .on('line_user')
    .column('richmenu_version_id')
    .execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropIndex('line_user_richmenu_version_id_idx').execute()
  await db.schema
    .alterTable('line_user')
    .dropColumn('richmenu_version_id')
    .dropColumn('richmenu_linked_at')
    .execute()
  await db.schema.dropTable('richmenu_version').execute()
}
