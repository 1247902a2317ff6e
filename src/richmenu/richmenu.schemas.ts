import { z } from 'zod'

/**
 * Who sees a menu. A person is in exactly one segment, the first that fits:
 * `vip` (the top tier of TIER_THRESHOLDS), `linked` (an online-shop account linked),
 * `member` (at least one purchase), else `new_friend`.
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
