import type { Processor } from '../platform/worker-types.ts'
import { unlinkErasedMenus } from './erased-unlink.service.ts'
import { linkRichMenus, relinkRichMenus } from './richmenu-link.service.ts'
import { checkBulkLink } from './richmenu-link-check.service.ts'

/** Links the menus of up to 500 LINE users (follow, account link, purchase). */
export const linkUsers: Processor<'richmenu.link-users'> = {
  async run(deps, { lineUserIds }) {
    await linkRichMenus(deps, lineUserIds)
  },
}

/** Links every friend whose menu differs from their segment's (deploy, bulk changes). */
export const relink: Processor<'richmenu.relink'> = {
  async run(deps) {
    const counts = await relinkRichMenus(deps)
    deps.log.info(counts, 'relinked rich menus')
  },
}

/** Checks back a bulk link LINE accepted (202): whoever it left without the menu is linked again. */
export const checkLinks: Processor<'richmenu.check-links'> = {
  async run(deps, data) {
    const counts = await checkBulkLink(deps, data)
    if (counts.missed > 0 || counts.unknown > 0) {
      deps.log.warn(counts, 'a bulk rich menu link left users without their menu')
    }
  },
}

/** Unlinks at LINE the menus of erased people the sweeper found still waiting (their row ids). */
export const unlinkErasedUsers: Processor<'richmenu.unlink-erased'> = {
  async run(deps, { unlinkIds }) {
    await unlinkErasedMenus(deps, unlinkIds)
  },
}
