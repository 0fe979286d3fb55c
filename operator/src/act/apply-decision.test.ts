// What applying a decision adds to a run's pods: their job's token Secret before the first one,
// no more privilege than the operator allows (said in an Event), and the token on savepoint
// requests — against the runtime's real control server.
import assert from "node:assert/strict";
import { test } from "node:test";
import type { V1Pod } from "@kubernetes/client-node";
import { Registry } from "prom-client";
import { ControlServer, type SavepointRequest } from "../../../runtime/src/control/server.ts";
import type { StreamJob } from "../api/types.ts";
import { DEFAULT_JOB_RESOURCES } from "../build/job-pod-defaults.ts";
import { buildConfigMap, buildPod, CONTROL_PORT, type RunRef } from "../build/run-objects.ts";
import { runSpecOf, specHash } from "../decide/run-spec.ts";
import { podSavepointState } from "../observe/runtime-control.ts";
import { type ActClients, applyDecision } from "./apply-decision.ts";

type Decision = Parameters<typeof applyDecision>[1];

const job = {
  apiVersion: "weir.dev/v1alpha1",
  kind: "StreamJob",
  metadata: { name: "wc", namespace: "team", uid: "0123456789ab", resourceVersion: "7" },
  spec: {
    image: "weir/runtime:1",
    job: { entry: "/app/runtime/examples/word-count.ts" },
    kafka: { bootstrapServers: ["127.0.0.1:9092"] },
    parallelism: 2,
    podTemplate: {
      spec: { containerSecurityContext: { privileged: true, allowPrivilegeEscalation: true } },
    },
  },
  status: {},
} as unknown as StreamJob;
const spec = runSpecOf(job);
const run: RunRef = { job, id: "r1", spec, specHash: specHash(spec) };

function decision(actions: Decision["actions"]): Decision {
  return {
    status: {},
    measurements: { savepoints: [], operations: [], autoscalerDecisions: [], standbys: [] },
    actions,
    events: [],
    requeueAfterMs: 0,
  } as unknown as Decision;
}

function fakeClients(podSecurity: ActClients["podSecurity"], token = "the-token") {
  const calls: string[] = [];
  const created: V1Pod[] = [];
  const events: { type: string; reason: string; message: string }[] = [];
  const clients = {
    objects: {
      create: async (object: V1Pod) => {
        calls.push(`create ${object.kind}`);
        if (object.kind === "Pod") created.push(object);
        return object;
      },
    },
    tokens: {
      read: async () => token,
      ensure: async () => {
        calls.push("ensure token");
      },
    },
    podSecurity,
    jobPodDefaults: { resources: DEFAULT_JOB_RESOURCES, priorityClassName: "streaming" },
    event: async (_job: StreamJob, event: (typeof events)[number]) => {
      events.push(event);
    },
  } as unknown as ActClients;
  return { clients, calls, created, events };
}

test("a run's pods: the token Secret and the disruption budget first, then pods held to restricted, and an Event naming what was overridden", async () => {
  const { clients, calls, created, events } = fakeClients("restricted");
  await applyDecision(
    job,
    decision([
      { kind: "create", object: buildConfigMap(run) },
      { kind: "create", object: buildPod(run, 0) },
      { kind: "create", object: buildPod(run, 1) },
    ]),
    clients,
  );
  assert.deepEqual(calls, [
    "create ConfigMap",
    "ensure token",
    "create PodDisruptionBudget",
    "create Pod",
    "create Pod",
  ]);
  for (const pod of created) {
    const sc = pod.spec?.containers[0]?.securityContext;
    assert.equal(sc?.privileged, false);
    assert.equal(sc?.allowPrivilegeEscalation, false);
    // The operator's defaults where the StreamJob names nothing (build/job-pod-defaults.ts).
    assert.deepEqual(pod.spec?.containers[0]?.resources, DEFAULT_JOB_RESOURCES);
    assert.equal(pod.spec?.priorityClassName, "streaming");
  }
  assert.equal(events.length, 1, "one Event per decision, not per pod");
  assert.equal(events[0]?.type, "Warning");
  assert.equal(events[0]?.reason, "PodSecurityOverridden");
  assert.match(
    events[0]?.message ?? "",
    /Pod Security "restricted".*containerSecurityContext\.privileged \(true → false\), spec\.podTemplate\.spec\.containerSecurityContext\.allowPrivilegeEscalation \(true → false\)/,
  );
});

test("an operator allowing privileged pods creates them as the template says, silently", async () => {
  const { clients, created, events } = fakeClients("privileged");
  await applyDecision(job, decision([{ kind: "create", object: buildPod(run, 0) }]), clients);
  assert.equal(created[0]?.spec?.containers[0]?.securityContext?.privileged, true);
  assert.deepEqual(events, []);
});

test("savepoint requests carry the job's token; the runtime refuses them without it", async () => {
  const asked: SavepointRequest[] = [];
  const server = new ControlServer(
    {
      healthy: () => true,
      ready: () => true,
      status: () => ({}),
      metrics: new Registry(),
      savepoint: async (request) => {
        asked.push(request);
        return { state: "completed", path: "s3://b/sp/", files: [], bytes: 0, operators: [] };
      },
    },
    { token: "the-token" },
  );
  // The contract's port on a loopback address of its own (no pod of the local cluster has it).
  const ip = `127.${100 + Math.floor(Math.random() * 100)}.${Math.floor(Math.random() * 250)}.9`;
  await server.listen(ip, CONTROL_PORT);
  try {
    const trigger = (id: string) => ({
      kind: "triggerSavepoint" as const,
      pod: "wc-r1-0",
      ip,
      id,
      stop: false,
    });
    await applyDecision(
      job,
      decision([trigger("sp-wrong")]),
      fakeClients("restricted", "nope").clients,
    );
    assert.deepEqual(asked, [], "a wrong token starts nothing");
    assert.deepEqual(await podSavepointState(ip, "sp-wrong", "nope"), {
      state: "unreachable",
      reason: "the pod refused the operator's control token (401)",
    });
    await applyDecision(job, decision([trigger("sp-1")]), fakeClients("restricted").clients);
    assert.deepEqual(asked, [{ id: "sp-1", stop: false }]);
    const state = await podSavepointState(ip, "sp-1", "the-token");
    assert.equal(state.state, "completed");
  } finally {
    await server.close();
  }
});
