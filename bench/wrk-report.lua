-- wrk script for bench/lib.ts: the method and body come from the environment (headers from -H), and
-- done() prints machine-readable lines instead of wrk's rounded text report:
--   bench-summary <duration µs> <responses> <connect errors> <read> <write> <status ≥ 400> <timeouts>
--   bench-latency <percentile in basis points> <latency µs>   (50, 100, …, 9800, 9810, …, 9990, 9991, …, 9999; 10000 = max)
-- No response() callback on purpose: it would make wrk parse every response in Lua and slow it down.

wrk.method = os.getenv("BENCH_METHOD") or wrk.method
local body = os.getenv("BENCH_BODY")
if body ~= nil and body ~= "" then wrk.body = body end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("bench-summary %d %d %d %d %d %d %d\n", summary.duration, summary.requests, e.connect, e.read, e.write, e.status, e.timeout))
  if summary.requests == 0 then return end
  local function point(bp) io.write(string.format("bench-latency %d %d\n", bp, latency:percentile(bp / 100))) end
  for bp = 50, 9800, 50 do point(bp) end
  for bp = 9810, 9990, 10 do point(bp) end
  for bp = 9991, 9999 do point(bp) end
  io.write(string.format("bench-latency 10000 %d\n", latency.max))
end
