import { z } from 'zod'

/** LINE: altText 1–1500 characters; a bubble's JSON at most 30 KB, a carousel's 50 KB. */
export const ALT_TEXT_MAX = 1500
export const CONTAINER_MAX_BYTES = { bubble: 30_000, carousel: 50_000 } as const

/** Template ids are file names in flex-templates/ (kebab-case, no paths). */
export const flexTemplateIdSchema = z
  .string()
  .regex(/^[a-z0-9]+(-[a-z0-9]+)*$/, 'a template id is kebab-case letters and digits')

/**
 * The shape code owns; LINE's own schema (checked in the test suite through the stand-in's
 * OpenAPI validator) decides the details of `contents`.
 */
export const flexTemplateSchema = z.strictObject({
  altText: z.string().min(1).max(ALT_TEXT_MAX),
  contents: z.looseObject({ type: z.enum(['bubble', 'carousel']) }),
})
export type FlexTemplate = z.infer<typeof flexTemplateSchema>

/** Values for `{{name}}` placeholders; numbers are printed as they are. */
export const flexVarsSchema = z.record(
  z.string().regex(/^\w+$/, 'a variable name is letters, digits and _'),
  z.union([z.string(), z.number()]),
)
export type FlexVars = z.infer<typeof flexVarsSchema>
