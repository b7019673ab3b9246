-- POST /payment/callback/<n>: each request a genuine WeChat notice for a distinct paid
-- order (as the sandbox's GET /wechat/_notice/<n> gave it), each handed out once.
-- Run it with one wrk thread (-t1): once every notice is handed out the thread stops,
-- writes <marker dir>/done-<k>, and bench/__main__.py ends wrk at once. (A stopped thread
-- leaves its freshly reconnected sockets open and idle; with a second thread still running,
-- each would hold a gunicorn sync worker until its 30 s timeout.) The notices still in
-- flight then -- at most one per connection -- are processed by the service but not
-- counted here; the bench checks in the database that every notice was recharged.
-- `counted`, t0 and t1 give the run's own count and duration (common.lua).
-- args: <notices file: path TAB openid TAB body, one per line> <threads> <marker dir>
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

local mine, sent, calls, marker, spare
function init(args)
  local threads = tonumber(args[2])
  marker = args[3] .. "/done-" .. tid
  mine = {}
  local n = 0
  for line in io.lines(args[1]) do
    if #line > 0 then
      if n % threads == tid - 1 then
        local path, openid, body = line:match("^([^\t]*)\t([^\t]*)\t(.*)$")
        mine[#mine + 1] = wrk.format("POST", path, {
          ["Content-Type"] = "application/json", ["X-WX-SOURCE"] = "wxpay_callback",
          ["X-WX-OPENID"] = openid, ["User-Agent"] = "wxcloudrun-pay-callback"}, body)
      end
      n = n + 1
    end
  end
  spare = wrk.format("GET", "/health")  -- never counted: its answer names the database
  sent, calls, counted = 0, 0, 0
end

function request()
  calls = calls + 1
  -- wrk calls thread 1's request() once before the run, to check it: that call must not
  -- use up a notice.
  if tid == 1 and calls == 1 then return spare end
  if sent == 0 then t0 = now_us() end
  if sent >= #mine then return spare end
  sent = sent + 1
  return mine[sent]
end

function response(status, headers, body)
  if not body:find('"database"', 1, true) then
    counted = counted + 1
    t1 = now_us()
  end
  if sent >= #mine then
    local f = io.open(marker, "w")
    if f then f:write(counted, "\n"); f:close() end
    wrk.thread:stop()
  end
end
