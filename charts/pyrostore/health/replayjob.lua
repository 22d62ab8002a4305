-- Argo CD health of a ReplayJob (pyrostore.io/v1alpha1), from the status the pyrostore operator writes.
-- Argo CD runs it with gopher-lua (Lua 5.1) without the string library; `obj` is the ReplayJob.
local status = obj.status
if status == nil or status.phase == nil then
  return {status = "Progressing", message = "waiting for the operator's first status"}
end
if status.observedGeneration ~= nil and status.observedGeneration ~= obj.metadata.generation then
  return {status = "Progressing", message = "waiting for the operator to observe generation " .. obj.metadata.generation}
end
local progress = status.progress or {}
local records = ""
if progress.recordsDone ~= nil and progress.recordsTotal ~= nil then
  records = " " .. progress.recordsDone .. " of " .. progress.recordsTotal .. " record(s)"
end
if status.phase == "Succeeded" then
  return {status = "Healthy", message = "replayed" .. records}
end
if status.phase == "Failed" then
  local message = "the replay failed"
  for _, condition in ipairs(status.conditions or {}) do
    if condition.type == "Stalled" and condition.message ~= nil and condition.message ~= "" then
      message = message .. ": " .. condition.message
    end
  end
  return {status = "Degraded", message = message}
end
local percent = ""
if progress.percent ~= nil then percent = " (" .. progress.percent .. ")" end
return {status = "Progressing", message = status.phase .. records .. percent}
