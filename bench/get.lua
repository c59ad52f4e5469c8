-- wrk: GET BENCH_PATH with a random member id in place of {id}; BENCH_TOKEN as a bearer token if set.
local path = os.getenv("BENCH_PATH") or "/v1/members/{id}/balance"
local members = tonumber(os.getenv("BENCH_MEMBERS") or "100000")
local token = os.getenv("BENCH_TOKEN")
local headers = {}
if token then headers["Authorization"] = "Bearer " .. token end

function init(args)
  math.randomseed(os.time() + math.random(1, 1e6))
end

function request()
  local p = string.gsub(path, "{id}", tostring(math.random(1, members)))
  return wrk.format("GET", p, headers)
end
