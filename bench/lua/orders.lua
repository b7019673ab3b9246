-- POST /orders, each request with the next customer's token: thread k of T starts at
-- its own offset in the token file and walks it, so concurrent requests come from
-- distinct users (the per-user limit rows never contend).
-- args: <tokens file, one per line> <request body> <threads>
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

local tokens, body, i
function init(args)
  tokens = {}
  for line in io.lines(args[1]) do
    if #line > 0 then tokens[#tokens + 1] = line end
  end
  body = args[2]
  i = (tid - 1) * math.floor(#tokens / tonumber(args[3]))
end

function request()
  i = i + 1
  return wrk.format("POST", "/orders", {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. tokens[(i % #tokens) + 1]}, body)
end
