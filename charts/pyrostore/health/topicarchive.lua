-- Argo CD health of a TopicArchive (pyrostore.io/v1alpha1), from the status the pyrostore operator writes.
-- Argo CD runs it with gopher-lua (Lua 5.1) without the string library; `obj` is the TopicArchive.
local function said(condition)
  local reason, message = condition.reason or "", condition.message or ""
  if message == "" then return reason end
  return reason .. ": " .. message
end

local status = obj.status
if status == nil or status.conditions == nil then
  return {status = "Progressing", message = "waiting for the operator's first status"}
end
if status.observedGeneration ~= nil and status.observedGeneration ~= obj.metadata.generation then
  return {status = "Progressing", message = "waiting for the operator to observe generation " .. obj.metadata.generation}
end
local conditions = {}
for _, condition in ipairs(status.conditions) do conditions[condition.type] = condition end
local ready, reconciling, stalled = conditions.Ready, conditions.Reconciling, conditions.Stalled
if stalled ~= nil and stalled.status == "True" then
  return {status = "Degraded", message = said(stalled)}
end
if ready ~= nil and ready.reason == "Suspended" then
  return {status = "Suspended", message = said(ready)}
end
if ready ~= nil and ready.reason == "AtRisk" then
  return {status = "Degraded", message = said(ready)}
end
if ready ~= nil and ready.status == "True" then
  return {status = "Healthy", message = ready.message or ""}
end
if reconciling ~= nil and reconciling.status == "True" then
  return {status = "Progressing", message = said(reconciling)}
end
return {status = "Progressing", message = ready and said(ready) or "waiting for the operator's conditions"}
