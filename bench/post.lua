-- wrk: POST /v1/purchases with a unique purchase_id each time, random member and amount.
-- Environment: BENCH_TOKEN (checkout key), BENCH_MEMBERS (ids 1..N), BENCH_OCCURRED_AT, BENCH_RUN (id prefix).
local token = os.getenv("BENCH_TOKEN")
local members = tonumber(os.getenv("BENCH_MEMBERS") or "100000")
local occurred = os.getenv("BENCH_OCCURRED_AT")
local run = os.getenv("BENCH_RUN") or tostring(os.time())
local counter = 0
local prefix

function setup(thread)
  thread:set("thread_id", tostring(math.random(1, 1e9)))
end

function init(args)
  prefix = run .. "-" .. (thread_id or tostring(math.random(1, 1e9))) .. "-"
  math.randomseed(os.time() + tonumber(thread_id or "0"))
end

local headers = {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. token}

function request()
  counter = counter + 1
  local member = math.random(1, members)
  local amount = math.random(100, 50000)
  local tax = math.floor(amount * 8 / 100)
  -- a quarter of the postings are paid with the Westique card (bonus points), as in `rewards demo`
  local method = (math.random() < 0.25) and "westique_credit_card" or "debit_card"
  local body = '{"purchase_id":"' .. prefix .. counter .. '","member_id":' .. member ..
    ',"occurred_at":"' .. occurred .. '","store_id":"S001","channel":"store","currency":"USD",' ..
    '"lines":[{"sku":"APP-100","category":"apparel","quantity":1,"amount_cents":' .. amount .. '},' ..
    '{"sku":"TAX","category":"tax","quantity":1,"amount_cents":' .. tax .. '}],' ..
    '"tenders":[{"method":"' .. method .. '","amount_cents":' .. (amount + tax) .. '}]}'
  return wrk.format("POST", "/v1/purchases", headers, body)
end
