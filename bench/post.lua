-- wrk script of sigwarden's benchmark: POST one body with fixed headers, keep-alive,
-- then print one machine-readable summary line.
--   BENCH_BODY       file holding the request body
--   BENCH_SIGNATURE  value of Sendcloud-Signature (unset or empty: no such header)
local file = assert(io.open(os.getenv("BENCH_BODY"), "rb"))
wrk.method = "POST"
wrk.body = file:read("*a")
file:close()
wrk.headers["Content-Type"] = "application/json"
wrk.headers["User-Agent"] = "Sendcloud/bench"
local signature = os.getenv("BENCH_SIGNATURE")
if signature ~= nil and signature ~= "" then
  wrk.headers["Sendcloud-Signature"] = signature
end

function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests": %d, "duration_us": %d, "bytes": %d, "connect_errors": %d, ' ..
    '"read_errors": %d, "write_errors": %d, "status_errors": %d, "timeouts": %d, ' ..
    '"latency_mean_us": %.1f, "latency_max_us": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d}\n',
    summary.requests, summary.duration, summary.bytes, errors.connect, errors.read, errors.write,
    errors.status, errors.timeout, latency.mean, latency.max,
    latency:percentile(50), latency:percentile(90), latency:percentile(99)))
end
