-- wrk script for scripts/bench-disk.sh: every request asks for one of OBJECTS paths
-- /d/0 .. /d/(OBJECTS-1), uniformly at random, so a working set far larger than a memory tier
-- is read the way a long tail is.
local n = tonumber(os.getenv("OBJECTS") or "1000")
local counter = 0

function init(args)
  math.randomseed(os.time() + counter)
end

function setup(thread)
  counter = counter + 1
end

request = function()
  return wrk.format("GET", "/d/" .. math.random(0, n - 1))
end
