import { z } from 'zod'

/** LINE limits (LINE-API.md §3). Sizes are bytes of the container's JSON. */
export const ALT_TEXT_MAX = 1500
export const CONTAINER_MAX_BYTES = { bubble: 30_000, carousel: 50_000 } as const
export const CAROUSEL_MAX_BUBBLES = 12
export const ACTION_TEXT_MAX = 300
export const URI_MAX = 1000
export const FLEX_LABEL_MAX = 40
/** Rich menu (and template, quick reply) action labels. */
export const RICH_MENU_LABEL_MAX = 20
export const IMAGE_URL_MAX = 2000
export const URI_SCHEMES = ['http:', 'https:', 'line:', 'tel:'] as const

/** Template ids are file names in flex-templates/ (kebab-case, no paths). */
export const flexTemplateIdSchema = z
  .string()
  .regex(/^[a-z0-9]+(-[a-z0-9]+)*$/, 'a template id is kebab-case letters and digits')

/** Long email bodies may be written as an array of lines; they are joined with "\n". */
const textBlockSchema = z.union([z.string().min(1), z.array(z.string()).min(1)])

/**
 * A message template file, `flex-templates/<id>.json` (format: src/flex/README.md). Editors
 * change data, code owns this shape; LINE's own schema (checked by `kizuna flex validate`
 * through the sandbox's OpenAPI validator) decides the details of `line.contents`.
 */
export const messageTemplateFileSchema = z.strictObject({
  $comment: z.string().optional(),
  description: z.string().min(1),
  category: z.enum(['transactional', 'marketing']),
  /** A JSON Schema (draft 2020-12) of the variables object. */
  variables: z.looseObject({
    type: z.literal('object'),
    properties: z.record(z.string(), z.unknown()).optional(),
  }),
  line: z.strictObject({
    altText: z.string().min(1),
    contents: z.looseObject({ type: z.enum(['bubble', 'carousel']) }),
  }),
  email: z.strictObject({
    subject: z.string().min(1),
    html: textBlockSchema,
    text: textBlockSchema,
  }),
})
export type MessageTemplateFile = z.infer<typeof messageTemplateFileSchema>
export type MessageCategory = MessageTemplateFile['category']

/** Template variables: any JSON object; each template's `variables` schema says what it takes. */
export const messageVarsSchema = z.record(z.string(), z.unknown())
export type MessageVars = z.infer<typeof messageVarsSchema>
