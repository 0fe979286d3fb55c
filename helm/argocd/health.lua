-- Argo CD health of a weir.dev/v1alpha1 StreamJob, from the conditions the operator writes.
-- Argo CD runs it with `obj` set to the live object (Lua 5.1, gopher-lua). Install it as the
-- argocd-cm key `resource.customizations.health.weir.dev_StreamJob` (docs/gitops.md).
--
--   Progressing  no status yet, or the status is older than the spec (observedGeneration), or
--                a run is starting or being replaced (Progressing=True)
--   Degraded     Degraded=True (a refused spec, failing pods, a failed savepoint) or state Failed
--   Suspended    spec.state suspended and no pod runs (state Suspended)
--   Healthy      Ready=True: every pod of the current run is ready
local hs = {}

local function condition(status, kind)
  if status.conditions == nil then
    return nil
  end
  for _, c in ipairs(status.conditions) do
    if c.type == kind then
      return c
    end
  end
  return nil
end

local function describe(c, fallback)
  if c.message ~= nil and c.message ~= "" then
    return c.reason .. ": " .. c.message
  end
  return c.reason or fallback
end

local status = obj.status
if status == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe the job"
  return hs
end

-- A status computed from an older spec says nothing about the current one.
local generation = obj.metadata.generation
if generation ~= nil and (status.observedGeneration == nil or status.observedGeneration < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. generation
  return hs
end

local degraded = condition(status, "Degraded")
if degraded ~= nil and degraded.status == "True" then
  hs.status = "Degraded"
  hs.message = describe(degraded, "Degraded")
  return hs
end
if status.state == "Failed" then
  hs.status = "Degraded"
  hs.message = "The job has failed"
  return hs
end

if status.state == "Suspended" then
  hs.status = "Suspended"
  hs.message = "The job is suspended"
  return hs
end

local progressing = condition(status, "Progressing")
if progressing ~= nil and progressing.status == "True" then
  hs.status = "Progressing"
  hs.message = describe(progressing, "Progressing")
  return hs
end

local ready = condition(status, "Ready")
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = describe(ready, "Ready")
  return hs
end

hs.status = "Progressing"
if ready ~= nil then
  hs.message = describe(ready, "Not ready")
else
  hs.message = "Waiting for the job to become ready"
end
return hs
