/**
 * A memory probe for the idle-subscriber benchmark (bench/chat.ts with BENCH_SSE_PROBE=1), preloaded into
 * the server under test: `bun --preload bench/targets/mem-probe.ts src/index.ts`. It changes nothing
 * until the process gets SIGUSR2; then it writes one JSON line to $MEM_PROBE_FILE: the process's memory
 * (RSS and JavaScriptCore's heap) before and after a full garbage collection, and how many objects of
 * each type the heap holds after it. The harness sends it before the subscribers connect and once they
 * have been held, so the difference per subscriber says what one stream keeps alive.
 */
import { appendFileSync } from 'node:fs'
import { heapStats } from 'bun:jsc'

function snapshot(withTypes: boolean) {
  const stats = heapStats()
  const usage = process.memoryUsage()
  return {
    rss: usage.rss,
    heap_size: stats.heapSize,
    heap_capacity: stats.heapCapacity,
    extra_memory: stats.extraMemorySize,
    object_count: stats.objectCount,
    array_buffers: usage.arrayBuffers,
    ...(withTypes ? { types: stats.objectTypeCounts } : {}),
  }
}

export type ProbeSample = { before_gc: ReturnType<typeof snapshot>; after_gc: ReturnType<typeof snapshot> }

const file = process.env.MEM_PROBE_FILE
if (file) {
  process.on('SIGUSR2', () => {
    const before = snapshot(false)
    Bun.gc(true)
    const after = snapshot(true)
    appendFileSync(file, JSON.stringify({ before_gc: before, after_gc: after } satisfies ProbeSample) + '\n')
  })
}
