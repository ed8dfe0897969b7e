-- Returns a table without a process function.
return { init = function() end }
