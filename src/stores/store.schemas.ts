import { z } from 'zod'
import { oneLineSchema } from '../platform/input.ts'

export const storeCodeSchema = z
  .string()
  .regex(/^[A-Za-z0-9_-]{1,32}$/, 'use 1-32 letters, digits, "_" or "-"')

export const newStoreSchema = z.object({
  code: storeCodeSchema,
  // One line: `kizuna stores list` prints a store a line, its cells tab-separated.
  name: oneLineSchema('a store needs a name')
    .min(1, 'a store needs a name')
    .max(100, 'at most 100 characters'),
})
