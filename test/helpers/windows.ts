/** Rate limits count in fixed windows aligned to the clock: a test that must stay inside one window waits out a window about to end. */

/** Resolves at once when at least `needMs` remain in the current `windowMs` window, else when the next one has begun. */
export async function inOneWindow(needMs: number, windowMs = 60_000) {
  const left = windowMs - (Date.now() % windowMs)
  if (left < needMs) await Bun.sleep(left + 50)
}
