import { z } from 'zod'

export const storeCodeSchema = z
  .string()
  .regex(/^[A-Za-z0-9_-]{1,32}$/, 'use 1-32 letters, digits, "_" or "-"')

export const newStoreSchema = z.object({
  code: storeCodeSchema,
  name: z.string().trim().min(1, 'a store needs a name').max(100),
})
