import type { JsonSchema } from './openapi-schema.ts'

/**
 * LINE's limits on message objects that its OpenAPI spec leaves in prose or out (LINE-API.md §3;
 * template limits: [REF #buttons], #confirm, #carousel, #image-carousel), as schema patches
 * appended to the components' `allOf`. A label's limit and the action types allowed depend on
 * where the action sits, so those are set on the containers, not on `Action`.
 */
const max = (n: number) => ({ type: 'string', maxLength: n })
/** Labels, action texts and template texts count grapheme clusters [DOCS:text-character-count]. */
const chars = (n: number) => ({ type: 'string', maxGraphemes: n })
const props = (properties: Record<string, unknown>) => ({ properties })

/** Action types LINE takes only in a quick reply (camera, …) or only in a rich menu (switch). */
const QUICK_REPLY_ONLY = ['camera', 'cameraRoll', 'location']
const RICH_MENU_ONLY = ['richmenuswitch']

function action(label: number, refused: string[]) {
  return props({ label: chars(label), type: { not: { enum: refused } } })
}

/** Bubbles are at most 30 KB of JSON, a carousel at most 50 KB (kB taken as 1,000 bytes). */
const BUBBLE_BYTES = 30_000
const CAROUSEL_BYTES = 50_000

export const MESSAGE_LIMITS: Record<string, JsonSchema[]> = {
  TextMessage: [props({ text: max(5000) })],
  TextMessageV2: [props({ text: max(5000) })],
  FlexMessage: [props({ altText: max(1500) })],
  TemplateMessage: [props({ altText: max(400) })],
  FlexBubble: [{ maxJsonBytes: BUBBLE_BYTES }],
  FlexCarousel: [
    { maxJsonBytes: CAROUSEL_BYTES },
    props({ contents: { minItems: 1, maxItems: 12, sameBubbleSize: true } }),
  ],
  MessageAction: [props({ text: chars(300) })],
  PostbackAction: [props({ displayText: chars(300), text: chars(300), fillInText: chars(300) })],
  URIAction: [props({ uri: { type: 'string', maxLength: 1000, pattern: '^(https?|line|tel):' } })],
  QuickReplyItem: [props({ action: action(20, RICH_MENU_ONLY) })],
  RichMenuArea: [props({ action: action(20, QUICK_REPLY_ONLY) })],
  ButtonsTemplate: [
    props({
      title: chars(40),
      actions: { maxItems: 4, items: action(20, [...QUICK_REPLY_ONLY, ...RICH_MENU_ONLY]) },
      defaultAction: action(20, [...QUICK_REPLY_ONLY, ...RICH_MENU_ONLY]),
    }),
    textWithImageOrTitle(160),
  ],
  ConfirmTemplate: [
    props({
      text: chars(240),
      actions: {
        minItems: 2,
        maxItems: 2,
        items: action(20, [...QUICK_REPLY_ONLY, ...RICH_MENU_ONLY]),
      },
    }),
  ],
  CarouselTemplate: [props({ columns: { maxItems: 10 } })],
  CarouselColumn: [
    props({
      title: chars(40),
      actions: { maxItems: 3, items: action(20, [...QUICK_REPLY_ONLY, ...RICH_MENU_ONLY]) },
      defaultAction: action(20, [...QUICK_REPLY_ONLY, ...RICH_MENU_ONLY]),
    }),
    textWithImageOrTitle(120),
  ],
  ImageCarouselTemplate: [props({ columns: { maxItems: 10 } })],
  ImageCarouselColumn: [props({ action: action(12, [...QUICK_REPLY_ONLY, ...RICH_MENU_ONLY]) })],
  ...Object.fromEntries(
    ['FlexBox', 'FlexButton', 'FlexImage', 'FlexText', 'FlexVideo'].map((name) => [
      name,
      [props({ action: action(40, [...QUICK_REPLY_ONLY, ...RICH_MENU_ONLY]) })],
    ]),
  ),
}

/** A template's text: 60 characters when it shows an image or a title, else `plain`. */
function textWithImageOrTitle(plain: number): JsonSchema {
  return {
    if: { anyOf: [{ required: ['thumbnailImageUrl'] }, { required: ['title'] }] },
    // biome-ignore lint/suspicious/noThenProperty: JSON Schema's if/then keyword, not a thenable
    then: props({ text: chars(60) }),
    else: props({ text: chars(plain) }),
  }
}

/** Appends each component's limits to its `allOf` (components the spec lacks are skipped). */
export function addMessageLimits(defs: Record<string, JsonSchema>): void {
  for (const [name, patches] of Object.entries(MESSAGE_LIMITS)) {
    const def = defs[name]
    if (!def) continue
    const allOf = Array.isArray(def.allOf) ? def.allOf : []
    defs[name] = { ...def, allOf: [...allOf, ...patches] }
  }
}
