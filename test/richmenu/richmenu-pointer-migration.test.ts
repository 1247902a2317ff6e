import { randomUUID } from 'node:crypto'
import { afterAll, describe, expect, it } from 'vitest'
import { databaseMigratedTo } from '../support/migrated-database.ts'

const BEFORE = '20261220T090000-index-multicast-chunks'

/**
 * Before richmenu_pointer, an alias or default still to settle was remembered on retired rows
 * (cleared once settled), and an unchanged folder's alias and the default were trusted to be where
 * its live version put them. Each becomes an unsettled pointer: the next deploy sets it again
 * (or deletes the alias, or clears the default) once.
 */
describe('migration 20261220T120000: rich menu pointers', () => {
  let migrated: Awaited<ReturnType<typeof databaseMigratedTo>> | undefined
  afterAll(async () => {
    await migrated?.close()
  })

  it('records every alias a version names, and the default if one was set, as unsettled', async () => {
    migrated = await databaseMigratedTo(BEFORE)
    const { db } = migrated
    const version = (name: string, over: Record<string, unknown>) => ({
      name,
      content_hash: randomUUID(),
      segments: [],
      line_rich_menu_id: `richmenu-${randomUUID()}`,
      deployed_at: new Date(),
      ...over,
    })
    await db
      .insertInto('richmenu_version')
      .values([
        version('main', { alias: 'main', is_default: true }),
        version('main', { alias: 'main', retired_at: new Date() }),
        version('tab', { alias: 'tab', retired_at: new Date() }), // to delete
        version('gone', { retired_at: new Date() }), // alias already settled
      ])
      .execute()

    await migrated.migrateToLatest()

    const pointers = await db
      .selectFrom('richmenu_pointer')
      .selectAll()
      .orderBy('pointer')
      .execute()
    expect(pointers.map((p) => [p.pointer, p.line_rich_menu_id, p.settled])).toEqual([
      ['alias:main', null, false],
      ['alias:tab', null, false],
      ['default', null, false],
    ])
  })
})
