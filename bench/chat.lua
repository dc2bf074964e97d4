-- wrk script of the benchmark: POST a small, non-streaming chat completion.
--
--   wrk -c 32 -t 2 -d 10s --latency -s bench/chat.lua http://127.0.0.1:3000/v1/chat/completions -- <key>
--
-- The API key comes from the first script argument (after `--`) or else from the environment
-- variable BENCH_API_KEY; the model from the second argument or BENCH_MODEL (default
-- gpt-4o-mini). BENCH_HEADERS adds request headers, one `Name: value` a line (the other
-- gateways bench/run.py compares with route by headers of their own). Each thread counts the responses it got and how many were not 2xx; done()
-- adds them up over the threads and prints one line the harness (bench/run.py) parses:
--
--   BENCH responses=<n> non2xx=<n>

local threads = {}

function setup(thread)
   table.insert(threads, thread)
end

function init(args)
   local key = args[1] or os.getenv("BENCH_API_KEY") or ""
   local model = args[2] or os.getenv("BENCH_MODEL") or "gpt-4o-mini"
   responses = 0
   non2xx = 0
   wrk.method = "POST"
   wrk.headers["Content-Type"] = "application/json"
   if key ~= "" then
      wrk.headers["Authorization"] = "Bearer " .. key
   end
   for line in (os.getenv("BENCH_HEADERS") or ""):gmatch("[^\n]+") do
      local name, value = line:match("^%s*([^:]-)%s*:%s*(.-)%s*$")
      if name and name ~= "" then
         wrk.headers[name] = value
      end
   end
   wrk.body = '{"model":"' .. model .. '","messages":[{"role":"user","content":"Say hello"}]}'
end

function response(status, headers, body)
   responses = responses + 1
   if status < 200 or status > 299 then
      non2xx = non2xx + 1
   end
end

function done(summary, latency, requests)
   local total, bad = 0, 0
   for _, thread in ipairs(threads) do
      total = total + (thread:get("responses") or 0)
      bad = bad + (thread:get("non2xx") or 0)
   end
   io.write(string.format("BENCH responses=%d non2xx=%d\n", total, bad))
end
