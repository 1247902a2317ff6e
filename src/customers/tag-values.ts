import { z } from 'zod'
import { invalidField } from '../platform/errors.ts'

export const MAX_TAG_LENGTH = 50

/** Control characters (tab, newline, NUL, …) and the Unicode line and paragraph separators. */
const CONTROL = /[\p{Cc}\p{Zl}\p{Zp}]/u
/**
 * Invisible formatting characters (Unicode category Cf: the zero-width space U+200B, the soft
 * hyphen U+00AD, the right-to-left override U+202E, the word joiner, a byte-order mark inside):
 * "vip\u200b" looks like "vip" and is another tag, which no segment on "vip" finds. The joiner
 * U+200D between two emoji is part of one (👨‍👩‍👧, ❤️‍🔥: a variation selector or skin tone
 * may follow the first), not refused.
 */
const FORMAT = /\p{Cf}/u
const EMOJI_JOINER =
  /(?<=\p{Extended_Pictographic}[\u{FE0F}\u{1F3FB}-\u{1F3FF}]?)\u200D(?=\p{Extended_Pictographic})/gu
const hasFormatCharacter = (tag: string) => FORMAT.test(tag.replace(EMOJI_JOINER, ''))
/** They separate tags in an import's `tags` cell (and commas its columns). */
const SEPARATOR = /[,;]/

/**
 * The tags a URL path cannot name: `…/tags/.` and `…/tags/%2E` are `…/tags/` to any URL parser
 * (dot segments), so one stored could never be removed through the API.
 */
const DOT_SEGMENT = /^\.\.?$/

/**
 * What a tag is read for: one to `add` must be storable; one to `remove` need only name what may
 * be stored, "." and ".." included (stored before they were refused, removed so: `kizuna
 * customers untag ID .`, or `DELETE …/tags/%EF%BC%8E`, "．").
 */
export type TagUse = 'add' | 'remove'

/**
 * A tag as it is stored: Unicode NFKC (full-width letters and digits become ASCII, half-width
 * katakana full-width), lower case and trimmed, so "VIP", "ｖｉｐ" and " vip " are one tag;
 * Japanese stays as written ("ソファ購入"). 1 to 50 characters (code points), no control
 * characters, no commas or semicolons (NFKC turns "，" and "；" into them); no invisible
 * formatting characters and not "." or ".." (nor "．") unless it is to be removed (TagUse: one
 * stored before they were refused). Returns the problem when the tag is refused.
 */
export function normaliseTag(
  raw: string,
  use: TagUse = 'add',
): { ok: true; value: string } | { ok: false; message: string } {
  const value = raw.normalize('NFKC').toLowerCase().normalize('NFKC').trim()
  const length = [...value].length
  if (length === 0) return { ok: false, message: 'empty: give 1 to 50 characters' }
  if (length > MAX_TAG_LENGTH) {
    return { ok: false, message: `too long (${length} characters): at most ${MAX_TAG_LENGTH}` }
  }
  if (CONTROL.test(value)) {
    return { ok: false, message: 'contains a control character (tab, line break, …)' }
  }
  if (SEPARATOR.test(value)) {
    return { ok: false, message: 'contains a comma or semicolon (they separate tags)' }
  }
  if (use === 'add' && hasFormatCharacter(value)) {
    return { ok: false, message: 'contains an invisible formatting character' }
  }
  if (use === 'add' && DOT_SEGMENT.test(value)) {
    return {
      ok: false,
      message: 'is "." or "..", which a URL path cannot carry (…/tags/. is …/tags/)',
    }
  }
  return { ok: true, value }
}

/** One tag, normalised (normaliseTag), for input schemas. */
export const tagSchema = z.string().transform((raw, ctx) => {
  const tag = normaliseTag(raw)
  if (tag.ok) return tag.value
  ctx.addIssue({ code: 'custom', message: tag.message })
  return z.NEVER
})

/**
 * An import cell of tags separated by `;` ("vip; ソファ購入"; a full-width "；" separates too, as
 * NFKC reads it): each normalised, each once, empty pieces skipped. A bad tag is named by its
 * place in the cell ("tag 2: too long …"), not quoted: the import reports it by line and field.
 */
export const tagListSchema = z.string().transform((raw, ctx) => {
  const tags = new Set<string>()
  raw
    .normalize('NFKC')
    .split(';')
    .forEach((piece, i) => {
      if (piece.trim() === '') return
      const tag = normaliseTag(piece)
      if (tag.ok) tags.add(tag.value)
      else ctx.addIssue({ code: 'custom', message: `tag ${i + 1}: ${tag.message}` })
    })
  return [...tags]
})

/** The tag `raw`, normalised; a refused one is BAD_REQUEST naming `field` and the rule. */
export function parseTag(raw: string, field = 'tag', use: TagUse = 'add'): string {
  const tag = normaliseTag(raw, use)
  if (tag.ok) return tag.value
  throw invalidField(field, tag.message)
}
