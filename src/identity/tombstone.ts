/**
 * What an erasure puts in place of an identity's value or a LINE user id: this prefix and a hash
 * (or the row's own id), never the value. Queries tell an erased LINE user by it
 * (ERASED_PATTERN, a `like` pattern).
 */
export const TOMBSTONE = 'erased:'
export const ERASED_PATTERN = `${TOMBSTONE}%`
