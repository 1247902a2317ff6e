/** A call not started because Redis, which holds the schedule, did not answer for too long. */
export class PacingUnavailable extends Error {
  override name = 'PacingUnavailable'
  constructor(key: string, waitedMs: number, cause: unknown) {
    const why = cause instanceof Error ? `: ${cause.message}` : ''
    super(
      `call not made: Redis (REDIS_URL), which paces it (${key}), did not answer for ${waitedMs} ms${why}`,
      { cause },
    )
  }
}
