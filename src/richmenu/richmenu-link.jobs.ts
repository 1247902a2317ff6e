import type { Processor } from '../platform/worker-types.ts'
import { unlinkErasedMenus } from './erased-unlink.service.ts'
import { type LinkOptions, linkRichMenus } from './richmenu-link.service.ts'
import { checkBulkLink } from './richmenu-link-check.service.ts'
import { relinkRichMenus } from './richmenu-relink.service.ts'

export type LinkJobOptions = Pick<LinkOptions, 'redeployLostMenus'>

/**
 * The link jobs of a process. `redeployLostMenus: false` in a process that does not deploy
 * richmenus/ (StartOptions.deployRichMenus): a menu LINE lost is logged, never deployed again
 * from the shipped folder.
 */
export function createLinkProcessors(opts: LinkJobOptions = {}) {
  /** Links the menus of up to 500 LINE users (follow, account link, purchase). */
  const linkUsers: Processor<'richmenu.link-users'> = {
    async run(deps, { lineUserIds }) {
      await linkRichMenus(deps, lineUserIds, opts)
    },
  }
  /** Links every friend whose menu differs from their segment's (deploy, bulk changes). */
  const relink: Processor<'richmenu.relink'> = {
    async run(deps) {
      const counts = await relinkRichMenus(deps, opts)
      deps.log.info(counts, 'relinked rich menus')
    },
  }
  /** Checks back a bulk link LINE accepted (202): who it left without the menu is linked again. */
  const checkLinks: Processor<'richmenu.check-links'> = {
    async run(deps, data) {
      const counts = await checkBulkLink(deps, data, opts)
      if (counts.missed > 0 || counts.unknown > 0) {
        deps.log.warn(counts, 'a bulk rich menu link left users without their menu')
      }
    },
  }
  return { linkUsers, relink, checkLinks }
}

/** The link jobs of a process that deploys richmenus/ (the default). */
export const { linkUsers, relink, checkLinks } = createLinkProcessors()

/** Unlinks at LINE the menus of erased people the sweeper found still waiting (their row ids). */
export const unlinkErasedUsers: Processor<'richmenu.unlink-erased'> = {
  async run(deps, { unlinkIds }) {
    await unlinkErasedMenus(deps, unlinkIds)
  },
}
