-- A plain GET of the URL given to wrk (wrk's own static request); only the summary.
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")
