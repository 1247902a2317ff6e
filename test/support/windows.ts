/** The most events in any sliding window [t, t + windowMs) over the sorted times. */
export function busiestWindow(sortedTimes: number[], windowMs: number): number {
  let most = 0
  let start = 0
  for (let end = 0; end < sortedTimes.length; end++) {
    while (sortedTimes[end]! - sortedTimes[start]! >= windowMs) start++
    most = Math.max(most, end - start + 1)
  }
  return most
}
