import { z } from 'zod'

/**
 * Who sees a menu. A person is in exactly one segment, the first that fits:
 * `vip` (the top tier of TIER_THRESHOLDS), `linked` (the LINE account has an active account
 * link: activeLinkOf in linking/link.repo.ts), `member` (at least one purchase), else
 * `new_friend`. A segment no live menu serves falls to the next that fits (a vip without a vip
 * menu gets the linked or member one).
 */
export const SEGMENTS = ['vip', 'linked', 'member', 'new_friend'] as const
export const segmentSchema = z.enum(SEGMENTS)
export type Segment = z.infer<typeof segmentSchema>

/**
 * `richmenus/<name>/menu.json`: Kizuna's keys around LINE's rich menu object (`richMenu`, sent
 * as is). LINE's own rules (sizes, areas, actions) are checked by richmenu-files.ts.
 */
export const richMenuFileSchema = z
  .object({
    /** The segments this menu is linked to; at most one menu per segment. */
    segments: z.array(segmentSchema).default([]),
    /** A rich menu alias (for `richmenuswitch` tabs): ^[a-z0-9_-]{1,32}$, unique. */
    alias: z
      .string()
      .regex(/^[a-z0-9_-]{1,32}$/, 'use 1–32 of a-z, 0-9, _ and -')
      .optional(),
    /** The channel's default menu: what people without a linked menu (and non-friends) see. */
    default: z.boolean().default(false),
    richMenu: z.record(z.string(), z.unknown()),
  })
  .strict()
export type RichMenuFileJson = z.infer<typeof richMenuFileSchema>

/** A menu folder's name: what `kizuna richmenu draw <name>` and a deploy call it. */
export const MENU_FOLDER_NAME = /^[a-z0-9][a-z0-9-]{0,31}$/

/** LINE's rules on a rich menu and its image (LINE-API.md §4). */
export const RICH_MENU_LIMITS = {
  widthMin: 800,
  widthMax: 2500,
  heightMin: 250,
  /** width / height at least this. */
  ratioMin: 1.45,
  nameMax: 300,
  chatBarTextMax: 14,
  areasMax: 20,
  richMenuAliasIdMax: 32,
  /** "1 MB"; the stand-in and LINE take 1,048,576 bytes. */
  imageBytesMax: 1024 * 1024,
} as const

/** Action types LINE takes in a rich menu area; camera, cameraRoll and location are quick reply only. */
export const RICH_MENU_ACTION_TYPES = [
  'postback',
  'message',
  'uri',
  'datetimepicker',
  'richmenuswitch',
  'clipboard',
] as const

/** The keys each action type needs (LINE's reference marks them required; its schema does not). */
export const RICH_MENU_ACTION_REQUIRED: Record<(typeof RICH_MENU_ACTION_TYPES)[number], string[]> =
  {
    postback: ['data'],
    message: ['text'],
    uri: ['uri'],
    datetimepicker: ['data', 'mode'],
    richmenuswitch: ['richMenuAliasId', 'data'],
    clipboard: ['clipboardText'],
  }
