-- POST bodies from the file given as the first script argument, in turn; each line
-- is "Type<TAB>compact JSON". Formatted once in init.
local requests = {}
local next_index = 0

function init(args)
   wrk.headers["Accept"] = "application/fhir+json"
   wrk.headers["Content-Type"] = "application/fhir+json"
   for line in io.lines(args[1]) do
      local type_name, body = line:match("^(%a+)\t(.*)$")
      requests[#requests + 1] = wrk.format("POST", "/fhir/" .. type_name, nil, body)
   end
end

function request()
   next_index = next_index % #requests + 1
   return requests[next_index]
end
