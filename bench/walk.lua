-- wrk script: each thread walks its own share of a URL list (one path per line).
--   WALK_RESULT=<result.json> WALK_MARKS=<dir> wrk ... -s bench/walk.lua URL -- <pathfile> <threads> <once|loop> [gzip]
-- once: every path is requested exactly once across all threads, then the threads stop (cold runs:
--       each request a distinct tile); loop: the list repeats until wrk's -d duration ends.
-- gzip: every request says `Accept-Encoding: gzip`, as browsers do (body bytes are then the gzipped
--       bytes on the wire: wrk does not decode them).
-- Records body bytes and non-2xx answers per thread; done() writes one JSON result.
-- wrk's own duration is always -d (its main thread sleeps that long), so in once mode each thread
-- writes its wall-clock start and end (ns) to WALK_MARKS/<start|end>.<id>; the harness sends wrk
-- SIGINT once every thread has ended (wrk then reports at once) and computes tiles/s from the marks.

local counter = 0
local threads = {}

function setup(thread)
  counter = counter + 1
  thread:set("id", counter)
  table.insert(threads, thread)
end

function init(args)
  local file = args[1]
  local nthreads = tonumber(args[2])
  loop = args[3] == "loop"
  if args[4] == "gzip" then
    headers = {["Accept-Encoding"] = "gzip"}
  end
  paths = {}
  local i = 0
  for line in io.lines(file) do
    if i % nthreads == id - 1 then
      paths[#paths + 1] = line
    end
    i = i + 1
  end
  marks = os.getenv("WALK_MARKS")
  idx = 0
  responses = 0
  bytes = 0
  errors = 0
  empty = 0
end

local function mark(what)
  if marks then
    os.execute("date +%s%N > " .. marks .. "/" .. what .. "." .. id)
  end
end

function request()
  if idx == 0 then
    mark("start")
  end
  idx = idx + 1
  if idx > #paths then
    -- once: the list is done but wrk wants a request for an idle connection; repeat the last
    -- path (its answer is not counted: the thread stops as soon as the list's answers are in)
    if loop then idx = 1 else idx = #paths end
  end
  return wrk.format("GET", paths[idx], headers)
end

function response(status, headers, body)
  responses = responses + 1
  if body ~= nil then
    bytes = bytes + #body
  end
  if status == 204 then
    empty = empty + 1
  elseif status ~= 200 then
    errors = errors + 1
  end
  if (not loop) and responses == #paths then
    mark("end")
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  local out = io.open(os.getenv("WALK_RESULT"), "w")
  local r, b, e, em = 0, 0, 0, 0
  for _, t in ipairs(threads) do
    r = r + t:get("responses")
    b = b + t:get("bytes")
    e = e + t:get("errors")
    em = em + t:get("empty")
  end
  local se = summary.errors
  out:write(string.format(
    '{"requests": %d, "duration_us": %d, "responses": %d, "body_bytes": %d, "http_errors": %d, "empty": %d, '
      .. '"socket_errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, '
      .. '"latency_us": {"mean": %.1f, "p50": %d, "p95": %d, "p99": %d, "max": %d}}\n',
    summary.requests, summary.duration, r, b, e, em,
    se.connect, se.read, se.write, se.status, se.timeout,
    latency.mean, latency:percentile(50), latency:percentile(95), latency:percentile(99), latency.max))
  out:close()
end
