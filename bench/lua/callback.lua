-- POST /payment/callback/<n>: each request a genuine WeChat notice for a distinct paid
-- order (as the sandbox's GET /wechat/_notice/<n> gave it). Thread k of T takes notices
-- k, k+T, k+2T, ... and hands each out once. Once its share is handed out, a connection
-- asking for more gets GET /health, at most one per 100 ms (not counted: /health's
-- answer names the database). The thread stops when every notice of its share is
-- answered -- or 15 s after the last was handed out, should a notice have been lost on
-- the way (the bench counts what reached the service). On stopping it writes
-- <marker dir>/done-<k>, and bench/__main__.py ends wrk. `counted`, t0 and t1 give the
-- run's own count and duration (common.lua).
-- args: <notices file: path TAB openid TAB body, one per line> <threads> <marker dir>
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

local mine, sent, marker, health, exhausted
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
  health = wrk.format("GET", "/health")
  sent, counted = 0, 0
end

local delays = 0
function delay()
  delays = delays + 1
  if sent >= #mine then return 100 end
  return 0
end

function request()
  -- wrk calls request() once on thread 1 to check it before the run: that call comes
  -- before any delay() (every real send is preceded by one) and must not use a notice.
  if delays == 0 then return mine[1] end
  if sent == 0 then t0 = now_us() end
  sent = sent + 1
  if sent == #mine then exhausted = now_us() end
  return mine[sent] or health
end

local function finish()
  local f = io.open(marker, "w")
  if f then f:write(counted, "\n"); f:close() end
  wrk.thread:stop()
end

function response(status, headers, body)
  if not body:find('"database"', 1, true) then  -- not /health's answer
    counted = counted + 1
    t1 = now_us()
    if counted >= #mine then finish() end
  elseif exhausted and now_us() - exhausted > 15000000 then
    finish()
  end
end
