/**
 * The part of autocannon 9's programmatic API that the benchmarks use. A local declaration instead of
 * @types/autocannon; extend it when a benchmark needs more (see node_modules/autocannon/README.md, "API").
 */
declare module 'autocannon' {
  export interface Options {
    url: string
    connections?: number
    /** seconds */
    duration?: number
    amount?: number
    /** seconds to wait for a response */
    timeout?: number
    pipelining?: number
    method?: string
    headers?: Record<string, string>
    body?: string | Buffer
    title?: string
  }

  /** hdr-histogram-percentiles-obj; latency values are whole milliseconds */
  export interface Histogram {
    average: number
    mean: number
    stddev: number
    min: number
    max: number
    total: number
    sent?: number
    p50: number
    p90: number
    p99: number
  }

  export interface Result {
    url: string
    /** seconds */
    duration: number
    connections: number
    errors: number
    timeouts: number
    mismatches: number
    non2xx: number
    latency: Histogram
    requests: Histogram
    throughput: Histogram
    statusCodeStats: Record<string, { count: number }>
  }

  export interface Instance extends PromiseLike<Result> {
    stop(): void
    /** every completed response; responseTime is in milliseconds with sub-millisecond precision */
    on(event: 'response', listener: (client: unknown, statusCode: number, resBytes: number, responseTime: number) => void): this
    on(event: 'done', listener: (result: Result) => void): this
    on(event: 'reqError' | 'error', listener: (error: Error) => void): this
  }

  export default function autocannon(options: Options): Instance
}
