-- GET a random path from the list given as the first script argument
-- (one "/fhir/Type/id" or "/fhir/Type/id/_history/n" per line). The requests
-- are formatted once in init so the request hook costs one table lookup.
local requests = {}

function init(args)
   wrk.headers["Accept"] = "application/fhir+json"
   for line in io.lines(args[1]) do
      requests[#requests + 1] = wrk.format("GET", line)
   end
   math.randomseed(tonumber(args[2]) or 1)
end

function request()
   return requests[math.random(#requests)]
end
