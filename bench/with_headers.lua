-- wrk script: the shared put.lua or get.lua (named by $RAFTKV_WRK_SCRIPT), with wrk's -H
-- headers on every request (kvlib's PUT passes its own header table, which replaces them).
local format = wrk.format
wrk.format = function(method, path, headers, body)
  local merged = {}
  for k, v in pairs(wrk.headers or {}) do merged[k] = v end
  for k, v in pairs(headers or {}) do merged[k] = v end
  return format(method, path, merged, body)
end
dofile(os.getenv("RAFTKV_WRK_SCRIPT") .. ".lua")  -- run from the shared bench directory
