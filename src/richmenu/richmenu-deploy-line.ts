import type { messagingApi } from '@line/bot-sdk'
import { AppError } from '../platform/errors.ts'
import { classifyLineError, type Line } from '../platform/line.ts'
import type { RichMenuImage } from './richmenu-files.ts'

/**
 * The LINE calls of a rich-menu deploy (LINE-API.md §4), each turning LINE's answers into what
 * the deploy does next: a 429 stops the deploy with a message saying so, a refusal names the
 * menu, and the answers that mean "already done" (an image already uploaded, a menu or alias
 * already gone) count as done.
 */
type LineCalls = Pick<Line, 'call'>

/** Checks the menu with LINE (free, unlimited) before a create spends one of 100 an hour. */
export async function validateLineRichMenu(
  line: LineCalls,
  name: string,
  richMenu: messagingApi.RichMenuRequest,
): Promise<void> {
  await attempt(`validate ${name}`, () =>
    line.call('richmenu-validate', (c) => c.validateRichMenuObject(richMenu)),
  )
}

/** Creates a menu; returns LINE's id. */
export async function createLineRichMenu(
  line: LineCalls,
  name: string,
  richMenu: messagingApi.RichMenuRequest,
): Promise<string> {
  const created = await attempt(`create ${name}`, () =>
    line.call('richmenu-create', (c) => c.createRichMenu(richMenu)),
  )
  return created.richMenuId
}

/** `gone`: LINE has no such menu (deleted outside Kizuna), so it must be created again. */
export async function uploadRichMenuImage(
  line: LineCalls,
  name: string,
  richMenuId: string,
  image: RichMenuImage,
): Promise<'uploaded' | 'gone'> {
  const blob = new Blob([new Uint8Array(image.bytes)], { type: image.contentType })
  try {
    await line.call('richmenu-image', (c) => c.setRichMenuImage(richMenuId, blob))
    return 'uploaded'
  } catch (error) {
    const failure = classifyLineError(error)
    // A retry after a crash between the upload and recording it: the image is ours.
    if (failure.status === 400 && /already been uploaded/i.test(failure.message)) return 'uploaded'
    if (failure.status === 404) return 'gone'
    throw toAppError(`upload the image of ${name}`, error)
  }
}

/** Points the alias at the menu: created, or updated when it already exists. */
export async function pointRichMenuAlias(
  line: LineCalls,
  alias: string,
  richMenuId: string,
): Promise<void> {
  try {
    await line.call('richmenu-alias-create', (c) =>
      c.createRichMenuAlias({ richMenuAliasId: alias, richMenuId }),
    )
    return
  } catch (error) {
    const failure = classifyLineError(error)
    if (!(failure.status === 400 && /conflict richmenu alias id/i.test(failure.message))) {
      throw toAppError(`create the alias ${alias}`, error)
    }
  }
  await attempt(`update the alias ${alias}`, () =>
    line.call('richmenu-alias-update', (c) => c.updateRichMenuAlias(alias, { richMenuId })),
  )
}

export async function setDefaultRichMenu(line: LineCalls, name: string, richMenuId: string) {
  await attempt(`make ${name} the default`, () =>
    line.call('richmenu-default-set', (c) => c.setDefaultRichMenu(richMenuId)),
  )
}

export async function clearDefaultRichMenu(line: LineCalls) {
  await attempt('clear the default menu', () =>
    line.call('richmenu-default-clear', (c) => c.cancelDefaultRichMenu()),
  )
}

/** Deletes a menu at LINE; a 404 means it is already gone. */
export async function deleteLineRichMenu(line: LineCalls, name: string, richMenuId: string) {
  await ignoringNotFound(`delete the retired menu of ${name}`, () =>
    line.call('richmenu-delete', (c) => c.deleteRichMenu(richMenuId)),
  )
}

/** Deletes an alias at LINE; a 404 means it is already gone. */
export async function deleteRichMenuAlias(line: LineCalls, alias: string) {
  await ignoringNotFound(`delete the alias ${alias}`, () =>
    line.call('richmenu-alias-delete', (c) => c.deleteRichMenuAlias(alias)),
  )
}

/** Every menu LINE has for the channel (one call, 10 a second). */
export async function listLineRichMenus(line: LineCalls): Promise<messagingApi.RichMenuResponse[]> {
  const list = await attempt('list the rich menus', () =>
    line.call('richmenu-list', (c) => c.getRichMenuList()),
  )
  return list.richmenus
}

async function attempt<T>(what: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn()
  } catch (error) {
    throw toAppError(what, error)
  }
}

async function ignoringNotFound(what: string, fn: () => Promise<unknown>): Promise<void> {
  try {
    await fn()
  } catch (error) {
    if (classifyLineError(error).status === 404) return
    throw toAppError(what, error)
  }
}

/**
 * A 429 and a refusal become AppErrors with a message an operator can act on; anything else
 * (a 5xx, a timeout) is rethrown as is, for the caller's retry.
 */
function toAppError(what: string, error: unknown): unknown {
  const failure = classifyLineError(error)
  if (failure.kind === 'rate_limited' || failure.kind === 'quota_exceeded') {
    const retryInMs = failure.kind === 'rate_limited' ? failure.retryInMs : undefined
    const stoppedBy =
      retryInMs === undefined
        ? "LINE's rate limit stopped the deploy"
        : 'The deploy stopped before using more than LINE allows'
    return new AppError(
      'TOO_MANY_REQUESTS',
      `${stoppedBy} at "${what}" (creating and deleting menus and deleting aliases: 100 an ` +
        'hour each). The steps already done are recorded: the deploy carries on from there ' +
        (retryInMs === undefined
          ? 'when run again later.'
          : `when run again in ${Math.ceil(retryInMs / 60_000)} min or later.`),
      { cause: error, details: { retryInMs: retryInMs ?? null } },
    )
  }
  if (failure.kind === 'rejected' || failure.kind === 'channel_refused') {
    return new AppError('BAD_REQUEST', `LINE refused to ${what}: ${failure.message}`, {
      cause: error,
      details: failure.kind === 'rejected' ? failure.details : null,
    })
  }
  return error
}
