-- wrk: GET /v1/members?phone=… for a random member of bench/common.py's seed_members (member g has
-- +1 555 and g in seven digits), written three ways as registers send it; BENCH_TOKEN as the bearer token.
local members = tonumber(os.getenv("BENCH_MEMBERS") or "100000")
local token = os.getenv("BENCH_TOKEN")
local headers = {}
if token then headers["Authorization"] = "Bearer " .. token end
local spellings = {"555%s", "%%2B1555%s", "%%28555%%29%%20%s"}

function init(args)
  math.randomseed(os.time() + math.random(1, 1e6))
end

function request()
  local digits = string.format("%07d", math.random(1, members))
  local spelling = spellings[math.random(1, #spellings)]
  if spelling:find("%%28") then digits = digits:sub(1, 3) .. "-" .. digits:sub(4) end
  return wrk.format("GET", "/v1/members?phone=" .. string.format(spelling, digits), headers)
end
