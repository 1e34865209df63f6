-- A shared wrk script (shared/bench/<RAFTKV_WRK_SCRIPT>.lua: put, get) with the far tail in a
-- second result line (wrk's own report stops at p99). bench/_wrk.py sets both variables.
dofile(os.getenv("RAFTKV_SHARED_BENCH") .. "/" .. os.getenv("RAFTKV_WRK_SCRIPT") .. ".lua")
local shared_done = done

function done(summary, latency, requests)
  shared_done(summary, latency, requests)
  io.write(string.format("TAIL p999_ms=%.3f p9999_ms=%.3f\n",
    latency:percentile(99.9) / 1000, latency:percentile(99.99) / 1000))
end
