-- Appended to every script: prints one line "BENCH_JSON {...}" with the counts and
-- the latency distribution (microseconds) that bench/loadgen.py parses.
function done(summary, latency, requests)
   local e = summary.errors
   local p = {}
   for _, q in ipairs({50, 90, 95, 99, 99.9}) do
      p[#p + 1] = string.format("%.0f", latency:percentile(q))
   end
   io.write(string.format(
      'BENCH_JSON {"requests":%.0f,"duration_us":%.0f,"bytes":%.0f,' ..
      '"errors":{"connect":%.0f,"read":%.0f,"write":%.0f,"status":%.0f,"timeout":%.0f},' ..
      '"latency_us":{"min":%.0f,"mean":%.1f,"stdev":%.1f,"max":%.0f,' ..
      '"p50":%s,"p90":%s,"p95":%s,"p99":%s,"p99_9":%s}}\n',
      summary.requests, summary.duration, summary.bytes,
      e.connect, e.read, e.write, e.status, e.timeout,
      latency.min, latency.mean, latency.stdev, latency.max,
      p[1], p[2], p[3], p[4], p[5]))
end
