// The operator's controller machinery against the real API server: informers (including a watch
// that is cut, a stream that goes silent and a resourceVersion that expires), leader election on
// a real Lease, conflict retries, Events and request metrics.
//
// Network faults are made by a TCP relay between the client and the API server (`FaultyLink`):
// the client under test talks to the relay, which the test can cut, refuse, freeze or turn into
// a black hole. The API server is never touched.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createServer, type Server, Socket } from "node:net";
import { createInterface } from "node:readline";
import { after, before, beforeEach, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import {
  CoordinationV1Api,
  CoreV1Api,
  EventsV1Api,
  KubeConfig,
  type V1ConfigMap,
  Watch,
} from "@kubernetes/client-node";
import { Registry } from "prom-client";
import { statusCodeOf } from "../../operator/src/machinery/api.ts";
import { retryOnConflict } from "../../operator/src/machinery/conflict.ts";
import { EventRecorder } from "../../operator/src/machinery/events.ts";
import { Informer, type RelistReason } from "../../operator/src/machinery/informer.ts";
import {
  LeaderElector,
  type StoppedLeading,
} from "../../operator/src/machinery/leader-election.ts";
import { instrumentKubeConfig } from "../../operator/src/machinery/metrics.ts";
import { adminKubeConfig, clusterEnv, uniqueName } from "../support/cluster.ts";
import { eventually } from "../support/wait.ts";

const admin = adminKubeConfig();
const core = admin.makeApiClient(CoreV1Api);

/**
 * A TCP relay to the API server whose connections the test can break:
 * - cut: closes every open connection (a watch ends with an error);
 * - refuse / heal: new connections are closed at once, or pass again;
 * - freeze: open connections stop carrying data but stay open (a silently dead stream);
 * - blackhole: open connections freeze and new ones are held without an answer.
 */
class FaultyLink {
  readonly #server: Server;
  readonly #pairs = new Set<[Socket, Socket]>();
  #mode: "pass" | "refuse" | "blackhole" = "pass";
  /** Connections refused so far (each is one attempt of the client). */
  refused = 0;

  private constructor(server: Server) {
    this.#server = server;
  }

  static async open(target: URL): Promise<FaultyLink> {
    const server = createServer();
    const link = new FaultyLink(server);
    server.on("connection", (client) => link.#accept(client, target));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    return link;
  }

  #accept(client: Socket, target: URL): void {
    if (this.#mode === "refuse") {
      this.refused++;
      client.destroy();
      return;
    }
    const upstream = new Socket();
    const pair: [Socket, Socket] = [client, upstream];
    this.#pairs.add(pair);
    const close = () => {
      this.#pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on("error", close).on("close", close);
    upstream.on("error", close).on("close", close);
    if (this.#mode === "blackhole") {
      client.pause();
      return;
    }
    upstream.connect(Number(target.port), target.hostname);
    client.pipe(upstream);
    upstream.pipe(client);
  }

  /** A copy of the admin kubeconfig that reaches the API server through this link. */
  kubeConfig(): KubeConfig {
    const cluster = admin.getCurrentCluster();
    assert.ok(cluster);
    const port = (this.#server.address() as { port: number }).port;
    const config = new KubeConfig();
    config.loadFromOptions({
      clusters: [{ ...cluster, server: `https://127.0.0.1:${port}` }],
      users: admin.users,
      contexts: admin.contexts,
      currentContext: admin.currentContext,
    });
    return config;
  }

  cut(): void {
    for (const [client, upstream] of this.#pairs) {
      client.destroy();
      upstream.destroy();
    }
  }

  refuse(): void {
    this.#mode = "refuse";
  }

  blackhole(): void {
    this.#mode = "blackhole";
    this.freeze();
  }

  freeze(): void {
    for (const [client, upstream] of this.#pairs) {
      client.unpipe(upstream);
      upstream.unpipe(client);
      client.pause();
      upstream.pause();
    }
  }

  heal(): void {
    this.#mode = "pass";
  }

  close(): Promise<void> {
    this.cut();
    return new Promise((resolve) => this.#server.close(() => resolve()));
  }
}

const CONFIGMAPS = { group: "", version: "v1", plural: "configmaps", kind: "ConfigMap" };
const LABEL = "weir.dev/test";

/** Everything an informer delivered, in order, as [event, name, data.value]. */
function recorder(informer: Informer<V1ConfigMap>) {
  const seen: [string, string, string | undefined][] = [];
  const relists: RelistReason[] = [];
  const note = (event: string) => (cm: V1ConfigMap) =>
    seen.push([event, cm.metadata?.name ?? "", cm.data?.value]);
  informer.on("add", note("add")).on("update", note("update")).on("delete", note("delete"));
  informer.on("relist", (reason) => {
    relists.push(reason);
    seen.push(["relist", reason, undefined]);
  });
  const saw = (event: string, name: string, value?: string) =>
    seen.some(([e, n, v]) => e === event && n === name && (value === undefined || v === value));
  return { seen, relists, saw };
}

describe("operator machinery", () => {
  const namespace = uniqueName("machinery");
  let link: FaultyLink;
  const stoppers: (() => Promise<void>)[] = [];

  before(async () => {
    await core.createNamespace({ body: { metadata: { name: namespace } } });
    const server = admin.getCurrentCluster()?.server;
    assert.ok(server);
    link = await FaultyLink.open(new URL(server));
  });

  // A test that failed half-way must not leave the link broken for the next one.
  beforeEach(() => link.heal());

  after(async () => {
    for (const stop of stoppers) await stop();
    await link.close();
    await core.deleteNamespace({ name: namespace });
  });

  function configMap(name: string, value: string, labelled = true): V1ConfigMap {
    return {
      metadata: { name, namespace, labels: labelled ? { [LABEL]: "machinery" } : {} },
      data: { value },
    };
  }
  const create = (name: string, value: string, labelled = true) =>
    core.createNamespacedConfigMap({ namespace, body: configMap(name, value, labelled) });
  const update = (name: string, value: string) =>
    core.patchNamespacedConfigMap({
      namespace,
      name,
      body: [{ op: "replace", path: "/data/value", value }],
    });
  const remove = (name: string) => core.deleteNamespacedConfigMap({ namespace, name });

  function informer(kubeConfig: KubeConfig, options: { watchdogMs?: number } = {}) {
    const result = new Informer<V1ConfigMap>(kubeConfig, CONFIGMAPS, {
      namespace,
      labelSelector: `${LABEL}=machinery`,
      backoff: { baseMs: 100, capMs: 1_000, jitter: 0.5 },
      ...options,
    });
    stoppers.push(() => result.stop());
    return result;
  }

  describe("informer", () => {
    test("sees add, update and delete; get and list follow; a throwing handler changes nothing", async () => {
      const cms = informer(admin);
      cms.on("add", () => {
        throw new Error("a handler that fails");
      });
      const { saw } = recorder(cms);
      cms.start();
      await cms.synced;
      assert.equal(cms.hasSynced(), true);

      await create("plain-a", "1");
      await create("unlabelled", "1", false);
      await eventually("the add", async () => saw("add", "plain-a", "1") || undefined);
      assert.equal(cms.get(namespace, "plain-a")?.data?.value, "1");
      assert.equal(cms.get(namespace, "plain-a")?.kind, "ConfigMap");

      await update("plain-a", "2");
      await eventually("the update", async () => saw("update", "plain-a", "2") || undefined);
      assert.equal(cms.getByKey(`${namespace}/plain-a`)?.data?.value, "2");

      await remove("plain-a");
      await eventually("the delete", async () => saw("delete", "plain-a") || undefined);
      assert.equal(cms.get(namespace, "plain-a"), undefined);
      assert.deepEqual(
        cms.list().map((cm) => cm.metadata?.name),
        [],
        "the unlabelled ConfigMap is outside the selector",
      );
      await cms.stop();
    });

    test("a cut watch is resumed from its resourceVersion after back-off, losing nothing", async () => {
      await create("cut-a", "1");
      const cms = informer(link.kubeConfig());
      const { saw, relists } = recorder(cms);
      cms.start();
      await cms.synced;

      const refusedBefore = link.refused;
      link.refuse();
      link.cut();
      await update("cut-a", "2");
      await create("cut-b", "1");
      await eventually("the informer trying again", async () =>
        link.refused >= refusedBefore + 2 ? true : undefined,
      );
      link.heal();

      await eventually("the changes made while cut", async () =>
        saw("update", "cut-a", "2") && saw("add", "cut-b") ? true : undefined,
      );
      assert.deepEqual(relists, ["initial"], "resumed by watching again, not by a relist");
      await cms.stop();
    });

    test("the watchdog relists a stream that went silent, and the change made meanwhile arrives", async () => {
      const registry = new Registry();
      const kubeConfig = link.kubeConfig();
      instrumentKubeConfig(kubeConfig, registry);
      const cms = informer(kubeConfig, { watchdogMs: 3_000 });
      const { saw, seen } = recorder(cms);
      cms.start();
      await cms.synced;
      await eventually("the watch to be open", async () =>
        (await registry.metrics()).includes('verb="watch",resource="configmaps",code="200"')
          ? true
          : undefined,
      );

      link.freeze();
      await create("silent-a", "1");
      await eventually("the change", async () => saw("add", "silent-a") || undefined, 30_000);
      const relisted = seen.findIndex(([e, reason]) => e === "relist" && reason === "watchdog");
      const added = seen.findIndex(([e, name]) => e === "add" && name === "silent-a");
      assert.ok(
        relisted >= 0 && relisted < added,
        `the relist brought it: ${JSON.stringify(seen)}`,
      );
      await cms.stop();
    });

    test("410 Gone: a resourceVersion the API server no longer has → relist with every change in between", async () => {
      await create("gone-kept", "1");
      await create("gone-changed", "1");
      await create("gone-removed", "1");
      const cms = informer(link.kubeConfig(), { watchdogMs: 600_000 });
      const { saw, relists, seen } = recorder(cms);
      cms.start();
      await cms.synced;

      // Keep the informer away while its resourceVersion ages out of the API server's watch
      // cache: the cache keeps recent events only (at least 75 s of them, more while it is not
      // full), so after enough other ConfigMap writes, a watch from the old version is answered
      // with 410 Gone. There is no other way to expire it from outside: compaction of etcd is
      // the API server's own business (every 5 minutes) and the watch cache serves watches.
      link.refuse();
      link.cut();
      const stale = cms.resourceVersion;
      await update("gone-changed", "2");
      await remove("gone-removed");
      await create("gone-new", "1");

      const started = Date.now();
      let writes = 0;
      await create("gone-churn", "0", false);
      await eventually(
        `a watch from resourceVersion ${stale} to be answered 410`,
        async () => {
          // Writes within the first 75 s would only make the cache grow; after that each one
          // pushes the oldest event out.
          const burst = Date.now() - started < 75_000 ? 1 : 100;
          for (let i = 0; i < burst; i++) await update("gone-churn", String(++writes));
          return (await watchAnswer(admin, namespace, stale)) === 410 || undefined;
        },
        300_000,
      );
      const seconds = (Date.now() - started) / 1000;
      console.log(
        `resourceVersion ${stale} expired after ${seconds.toFixed(0)} s and ${writes} writes`,
      );

      const before = seen.length;
      link.heal();
      await eventually("the relist after 410", async () =>
        relists.includes("expired") ? true : undefined,
      );
      const after = seen.slice(before);
      assert.ok(saw("update", "gone-changed", "2"), JSON.stringify(after));
      assert.ok(saw("delete", "gone-removed"), JSON.stringify(after));
      assert.ok(saw("add", "gone-new"), JSON.stringify(after));
      assert.ok(
        !after.some(([, name]) => name === "gone-kept"),
        "unchanged objects are not re-delivered",
      );
      assert.deepEqual(
        cms
          .list()
          .map((cm) => cm.metadata?.name)
          .filter((name) => name?.startsWith("gone-"))
          .sort(),
        ["gone-changed", "gone-kept", "gone-new"],
      );
      await cms.stop();
    });
  });

  describe("leader election", () => {
    type Timeline = { who: string; what: "started" | StoppedLeading; at: number }[];

    function candidate(
      kubeConfig: KubeConfig,
      lease: string,
      identity: string,
      timeline: Timeline,
      timing: { leaseDurationMs: number; renewDeadlineMs: number; retryPeriodMs: number },
    ) {
      const elector = new LeaderElector({
        kubeConfig,
        namespace,
        name: lease,
        identity,
        ...timing,
        onStartedLeading: () =>
          timeline.push({ who: identity, what: "started", at: performance.now() }),
        onStoppedLeading: (why) => {
          timeline.push({ who: identity, what: why, at: performance.now() });
        },
      });
      stoppers.push(() => elector.stop());
      return elector;
    }

    /** No two terms overlap: each "started" comes after the previous leader's stop. */
    function assertOneLeaderAtATime(timeline: Timeline) {
      let leader: string | undefined;
      for (const entry of timeline) {
        if (entry.what === "started") {
          assert.equal(
            leader,
            undefined,
            `${entry.who} started while ${leader} led: ${JSON.stringify(timeline)}`,
          );
          leader = entry.who;
        } else {
          assert.equal(leader, entry.who);
          leader = undefined;
        }
      }
    }

    const readLease = (name: string) =>
      admin.makeApiClient(CoordinationV1Api).readNamespacedLease({ namespace, name });

    test("two candidates: exactly one leads; a graceful stop hands over at once", async () => {
      const lease = uniqueName("lease");
      const timeline: Timeline = [];
      const timing = { leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 500 };
      const a = candidate(admin, lease, "candidate-a", timeline, timing);
      const b = candidate(admin, lease, "candidate-b", timeline, timing);
      let both = 0;
      const watchdog = setInterval(() => {
        if (a.isLeader() && b.isLeader()) both++;
      }, 20);
      stoppers.push(async () => clearInterval(watchdog));
      a.run();
      b.run();
      const first = await eventually("a leader", async () => timeline[0]?.who);
      const [leader, follower] = first === "candidate-a" ? [a, b] : [b, a];
      await eventually("the follower to see the leader", async () =>
        follower.leader === first ? true : undefined,
      );
      // Several attempts of the follower against a held lease.
      await sleep(4 * timing.retryPeriodMs);
      assert.equal(timeline.length, 1, JSON.stringify(timeline));
      const held = await readLease(lease);
      assert.equal(held.spec?.holderIdentity, first);
      assert.equal(held.spec?.leaseDurationSeconds, 15);
      assert.ok(held.spec?.renewTime && held.spec.acquireTime);

      const stoppedAt = performance.now();
      await leader.stop();
      const second = await eventually("the other candidate to lead", async () =>
        timeline.find((e) => e.what === "started" && e.who !== first),
      );
      clearInterval(watchdog);
      const takeoverMs = second.at - stoppedAt;
      console.log(`graceful handover took ${takeoverMs.toFixed(0)} ms (lease duration 15 s)`);
      assert.ok(takeoverMs < timing.leaseDurationMs, "the successor did not wait for expiry");
      assert.deepEqual(
        timeline.map((e) => [e.who === first ? "first" : "second", e.what]),
        [
          ["first", "started"],
          ["first", "released"],
          ["second", "started"],
        ],
      );
      const handedOver = await readLease(lease);
      assert.equal(handedOver.spec?.holderIdentity, follower === a ? "candidate-a" : "candidate-b");
      assert.equal(handedOver.spec?.leaseTransitions, 1);
      assertOneLeaderAtATime(timeline);
      assert.equal(both, 0);
      await follower.stop();
    });

    test("a leader that cannot renew steps down before the other takes over after expiry", async () => {
      const lease = uniqueName("lease");
      const timeline: Timeline = [];
      const timing = { leaseDurationMs: 6_000, renewDeadlineMs: 3_000, retryPeriodMs: 500 };
      const cut = candidate(link.kubeConfig(), lease, "behind-link", timeline, timing);
      const other = candidate(admin, lease, "direct", timeline, timing);
      cut.run();
      await eventually("the first candidate to lead", async () => cut.isLeader() || undefined);
      other.run();
      await eventually("the other to see it", async () =>
        other.leader === "behind-link" ? true : undefined,
      );

      // Its requests now hang: neither answered nor failed, like a partitioned node.
      link.blackhole();
      const partitionedAt = performance.now();
      const takeover = await eventually(
        "the other candidate to lead",
        async () => timeline.find((e) => e.who === "direct" && e.what === "started"),
        30_000,
      );
      const stepDown = timeline.find((e) => e.who === "behind-link" && e.what === "lost");
      assert.ok(stepDown, `the old leader stepped down: ${JSON.stringify(timeline)}`);
      assert.ok(stepDown.at < takeover.at, "it stepped down before the other took over");
      assert.equal(cut.isLeader(), false);
      console.log(
        `partitioned leader stepped down after ${(stepDown.at - partitionedAt).toFixed(0)} ms, ` +
          `other took over after ${(takeover.at - partitionedAt).toFixed(0)} ms`,
      );
      assertOneLeaderAtATime(timeline);

      link.cut();
      link.heal();
      // Back on the network, it finds the lease held and stays a follower.
      await eventually("the old leader to see the new one", async () =>
        cut.leader === "direct" ? true : undefined,
      );
      assert.equal(cut.isLeader(), false);
      assert.equal((await readLease(lease)).spec?.leaseTransitions, 1);
    });
    test("a leader whose process is frozen loses the lease and, thawed, steps down at once", async () => {
      const lease = uniqueName("lease");
      const timeline: Timeline = [];
      const timing = { leaseDurationMs: 6_000, renewDeadlineMs: 3_000, retryPeriodMs: 500 };
      const child = spawnCandidate({ namespace, name: lease }, "frozen", timing);
      stoppers.push(async () => {
        child.process.kill("SIGCONT");
        child.process.kill("SIGTERM");
      });
      await eventually("the child process to lead", async () => child.saw("started") || undefined);
      const other = candidate(admin, lease, "direct", timeline, timing);
      other.run();
      await eventually("the other to see it", async () =>
        other.leader === "frozen" ? true : undefined,
      );

      assert.ok(child.process.pid);
      process.kill(child.process.pid, "SIGSTOP");
      const frozenAt = performance.now();
      const takeover = await eventually(
        "the other candidate to lead",
        async () => timeline.find((e) => e.who === "direct" && e.what === "started"),
        30_000,
      );
      assert.ok(
        takeover.at - frozenAt >= timing.leaseDurationMs - timing.retryPeriodMs,
        "only after the lease expired",
      );
      process.kill(child.process.pid, "SIGCONT");
      await eventually(
        "the thawed leader to step down",
        async () => child.saw("lost") || undefined,
      );
      await eventually(
        "it to see the new leader",
        async () => child.saw("leader direct") || undefined,
      );
      assert.equal(
        child.lines.filter((line) => line === "started").length,
        1,
        child.lines.join("\n"),
      );
      assert.equal(other.isLeader(), true);
    });
  });

  test("conflicting updates are retried from a fresh read until every one lands", async () => {
    await create("counter", "0", false);
    let conflicts = 0;
    // The first round of all four writers reads the same version: three of them must conflict.
    let firstRoundReads = 0;
    let releaseFirstRound = () => {};
    const firstRoundRead = new Promise<void>((resolve) => {
      releaseFirstRound = resolve;
    });
    const increment = (writer: number, round: number) =>
      retryOnConflict(
        () => core.readNamespacedConfigMap({ namespace, name: "counter" }),
        async (current) => {
          if (round === 0) {
            if (++firstRoundReads === 4) releaseFirstRound();
            await firstRoundRead;
          }
          const value = Number(current.data?.value) + 1;
          try {
            return await core.replaceNamespacedConfigMap({
              namespace,
              name: "counter",
              body: {
                ...current,
                data: { value: String(value), [`writer-${writer}`]: String(round) },
              },
            });
          } catch (error) {
            if (statusCodeOf(error) === 409) conflicts++;
            throw error;
          }
        },
        { attempts: 10 },
      );
    await Promise.all(
      [0, 1, 2, 3].map(async (writer) => {
        for (let round = 0; round < 3; round++) await increment(writer, round);
      }),
    );
    const counter = await core.readNamespacedConfigMap({ namespace, name: "counter" });
    assert.equal(counter.data?.value, "12", "no increment was lost");
    assert.ok(conflicts >= 3, `conflicts: ${conflicts}`);
  });

  test("Events are recorded, repeats aggregated into a series, and failures never thrown", async () => {
    const target = await create("evented", "1", false);
    const events = new EventRecorder(admin, { component: "weir-test", instance: "machinery-e2e" });
    const subject = { ...target, apiVersion: "v1", kind: "ConfigMap" };
    await events.record(subject, "Normal", "Tested", "the same thing happened");
    await Promise.all(
      [1, 2, 3].map(() => events.record(subject, "Normal", "Tested", "the same thing happened")),
    );
    await events.record(subject, "Normal", "Tested", "something else happened");
    await events.record(subject, "Warning", "TooLong", "x".repeat(5000));
    // An object in a namespace that does not exist: logged, not thrown.
    await events.record(
      { ...subject, metadata: { ...subject.metadata, namespace: uniqueName("nowhere") } },
      "Normal",
      "Lost",
      "nobody will see this",
    );

    const list = await admin.makeApiClient(EventsV1Api).listNamespacedEvent({ namespace });
    const ours = list.items.filter((e) => e.reportingController === "weir-test");
    const byNote = new Map(ours.map((e) => [e.note, e]));
    assert.equal(ours.length, 3, JSON.stringify(ours.map((e) => e.note?.slice(0, 40))));
    const repeated = byNote.get("the same thing happened");
    assert.equal(repeated?.series?.count, 4);
    assert.ok(repeated?.series?.lastObservedTime);
    assert.equal(repeated?.regarding?.uid, target.metadata?.uid);
    assert.equal(repeated?.reportingInstance, "machinery-e2e");
    assert.equal(byNote.get("something else happened")?.series, undefined);
    const warning = ours.find((e) => e.type === "Warning");
    assert.ok(warning?.note && Buffer.byteLength(warning.note) <= 1024);
    // The core/v1 view of the same Event carries the series.
    const coreEvents = await core.listNamespacedEvent({ namespace });
    const coreView = coreEvents.items.find((e) => e.message === "the same thing happened");
    assert.equal(coreView?.series?.count, 4);
  });

  test("API requests are counted by verb, resource and code", async () => {
    const registry = new Registry();
    const kubeConfig = link.kubeConfig();
    instrumentKubeConfig(kubeConfig, registry);
    const api = kubeConfig.makeApiClient(CoreV1Api);
    await api.readNamespacedConfigMap({ namespace, name: "counter" });
    await api.readNamespacedConfigMap({ namespace, name: "missing" }).catch(() => undefined);
    const cms = informer(kubeConfig);
    cms.start();
    await cms.synced;
    const counted = async (labels: string) => {
      const text = await registry.metrics();
      return text.includes(`weir_operator_api_requests_total{${labels}} 1`) || undefined;
    };
    assert.ok(await counted(`verb="get",resource="configmaps",code="200"`));
    assert.ok(await counted(`verb="get",resource="configmaps",code="404"`));
    assert.ok(await counted(`verb="list",resource="configmaps",code="200"`));
    await eventually("the watch to be counted", () =>
      counted(`verb="watch",resource="configmaps",code="200"`),
    );
    await cms.stop();
  });
});

/**
 * A leader-election candidate in a child process of its own (so that the test can freeze it with
 * SIGSTOP); it prints "started", "lost", "released" and "leader <identity>" lines.
 */
function spawnCandidate(
  lease: { namespace: string; name: string },
  identity: string,
  timing: { leaseDurationMs: number; renewDeadlineMs: number; retryPeriodMs: number },
) {
  const module = new URL("../../operator/src/machinery/leader-election.ts", import.meta.url).href;
  const script = `
    import { KubeConfig } from "@kubernetes/client-node";
    import { LeaderElector } from ${JSON.stringify(module)};
    const kubeConfig = new KubeConfig();
    kubeConfig.loadFromFile(process.env.KUBECONFIG);
    const elector = new LeaderElector({
      kubeConfig, ...JSON.parse(process.env.CANDIDATE),
      onStartedLeading: () => console.log("started"),
      onStoppedLeading: (why) => console.log(why),
      onNewLeader: (leader) => console.log("leader " + leader),
    });
    elector.run();
    process.on("SIGTERM", () => elector.stop().then(() => process.exit(0)));
  `;
  const child = spawn(process.execPath, ["--input-type=module", "-e", script], {
    cwd: new URL("../..", import.meta.url).pathname,
    env: {
      ...process.env,
      KUBECONFIG: clusterEnv().kubeconfig,
      CANDIDATE: JSON.stringify({
        namespace: lease.namespace,
        name: lease.name,
        identity,
        ...timing,
      }),
    },
    stdio: ["ignore", "pipe", "inherit"],
  });
  const lines: string[] = [];
  createInterface({ input: child.stdout }).on("line", (line) => lines.push(line));
  return { process: child, lines, saw: (line: string) => lines.includes(line) };
}

/** The HTTP status a watch from `resourceVersion` starts with: 200, or 410 when it expired. */
async function watchAnswer(kubeConfig: KubeConfig, namespace: string, resourceVersion: string) {
  return new Promise<number>((resolve, reject) => {
    let controller: AbortController | undefined;
    let settled = false;
    const settle = (code: number) => {
      if (settled) return;
      settled = true;
      controller?.abort();
      resolve(code);
    };
    new Watch(kubeConfig)
      .watch(
        `/api/v1/namespaces/${namespace}/configmaps`,
        { resourceVersion },
        (phase, object) => settle(phase === "ERROR" ? (statusCodeOf(object) ?? 500) : 200),
        (error) => (error ? settle(statusCodeOf(error) ?? 500) : settle(200)),
      )
      .then((c) => {
        controller = c;
        if (settled) c.abort();
      }, reject);
  });
}
