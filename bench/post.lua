-- post.lua - wrk script for the single-record POST benchmark.
--
--   TARN_TOKEN=... wrk -t2 -c16 -d10s -s bench/post.lua http://127.0.0.1:PORT/v1/tables/bench/single/records
--
-- Every request POSTs the same 190-byte JSON object (the seed's IoT reading)
-- with keep-alive. At the end one line starting with WRK_JSON gives the
-- totals that bench/tarnbench.py reads: requests completed, responses with a
-- status >= 400 (wrk's "Non-2xx or 3xx"), socket errors and latency.
local token = os.getenv("TARN_TOKEN") or ""

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. token
wrk.body = '{"source":"iot_sensors","data":{"device_id":"sensor_001","temperature":22.5,"humidity":65,' ..
           '"timestamp":"2025-11-25T10:00:00Z"},"metadata":{"location":"warehouse_a","firmware_version":"2.1.0"}}'

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      'WRK_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"status_errors":%d,"connect_errors":%d,' ..
      '"read_errors":%d,"write_errors":%d,"timeouts":%d,"latency_p50_us":%d,"latency_p99_us":%d,' ..
      '"latency_max_us":%d,"body_bytes":%d}\n',
      summary.requests, summary.duration, summary.bytes, e.status, e.connect, e.read, e.write, e.timeout,
      latency:percentile(50), latency:percentile(99), latency.max, #wrk.body))
end
