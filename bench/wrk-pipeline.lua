-- wrk script: every write carries DEPTH requests for "/" back to back (HTTP/1.1
-- pipelining; wrk counts each response). The load generator then costs a
-- fraction of a system call per request, so the server, not wrk, sets the rate.
--
--   wrk -s bench/wrk-pipeline.lua URL -- DEPTH
local batch

init = function(args)
   local depth = tonumber(args[1]) or 16
   local one = wrk.format("GET", "/")
   batch = string.rep(one, depth)
end

request = function()
   return batch
end
