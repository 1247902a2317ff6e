import type { Env } from '../../config/env.ts'
import { queueRelinkFromCli } from '../relink.ts'

/**
 * After an import that changed customers: one relink for the workers, so that people whose
 * segment changed (a first purchase, a new tier, a linked shop account) get their menu within
 * minutes rather than at the nightly relink. Reported on stdout; never fails the import.
 */
export async function relinkAfterImport(env: Env): Promise<void> {
  const result = await queueRelinkFromCli(env, 'import')
  if (result.queued) {
    console.log('rich menus: re-linking queued (the workers move people whose segment changed)')
    return
  }
  console.error(
    `rich menus: could not queue the re-linking (${result.why}): the nightly relink does it`,
  )
}
