import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { decide, type ObservedRefusal } from "../reconcile.ts";
import { after, condition, created, now, observe, podsOf, sampleJob } from "../test-fixtures.ts";

describe("refusal: objects the API server refuses", () => {
  const refusal = (run: string, extra: Partial<ObservedRefusal> = {}): ObservedRefusal => ({
    kind: "Pod",
    name: `wc-${run}-0`,
    run,
    code: 422,
    message: 'Pod "wc-r1-0" is invalid: metadata.labels: Invalid value: "a b": name part must …',
    field: "metadata.labels",
    ...extra,
  });

  test("a first run's refused pod: Degraded in the API server's words naming the job's field, asked again after a back-off", () => {
    const bad = sampleJob({ podTemplate: { metadata: { labels: { team: "a b" } } } });
    const first = decide(observe(bad));
    const refused = decide({ ...observe(after(bad, first)), refusal: refusal("r1") });
    assert.deepEqual(created(refused), [], "nothing more is created for the refused run");
    const degraded = condition(refused, "Degraded");
    assert.equal(degraded?.reason, "PodsRefused");
    assert.match(
      degraded?.message ?? "",
      /^spec\.podTemplate\.metadata\.labels: the API server refused Pod wc-r1-0 \(422\): Pod "wc-r1-0" is invalid: metadata\.labels: Invalid value/,
    );
    assert.ok(refused.events.some((e) => e.type === "Warning" && e.reason === "PodsRefused"));
    assert.equal(refused.status.run?.refused?.attempt, 1);
    assert.equal(
      refused.status.run?.refused?.retryTime,
      new Date(now.getTime() + 10_000).toISOString(),
    );

    const waiting = decide({
      ...observe(after(bad, refused)),
      now: new Date(now.getTime() + 5_000),
    });
    assert.deepEqual(created(waiting), []);
    assert.ok(waiting.requeueAfterMs <= 5_000);
    assert.equal(condition(waiting, "Degraded")?.reason, "PodsRefused");

    const retry = decide({
      ...observe(after(bad, refused)),
      now: new Date(now.getTime() + 11_000),
    });
    assert.deepEqual(created(retry), ["ConfigMap/wc-r1-config", "Pod/wc-r1-0", "Pod/wc-r1-1"]);
    const again = decide({
      ...observe(after(bad, retry)),
      refusal: refusal("r1"),
      now: new Date(now.getTime() + 11_000),
    });
    assert.equal(again.status.run?.refused?.attempt, 2, "backing off: 20 s now");

    // Allowed at last (a quota raised): every pod exists, the refusal is forgotten.
    const whole = decide({ ...observe(after(bad, again), podsOf("r1")) });
    assert.equal(whole.status.run?.refused, undefined);
    assert.equal(condition(whole, "Degraded")?.status, "False");
  });

  test("a refusal of another run's object (one already replaced) is not kept", () => {
    const first = decide(observe(sampleJob()));
    const d = decide({ ...observe(after(sampleJob(), first)), refusal: refusal("r0") });
    assert.equal(d.status.run?.refused, undefined);
    assert.notEqual(condition(d, "Degraded")?.reason, "PodsRefused");
  });

  test("the back-off doubles up to 10 minutes", () => {
    const bad = sampleJob();
    const first = decide(observe(bad));
    const run = first.status.run;
    assert.ok(run);
    const d = decide({
      ...observe({
        ...bad,
        status: {
          ...first.status,
          run: {
            ...run,
            refused: {
              object: "Pod wc-r1-0",
              code: 403,
              message: "quota",
              time: now.toISOString(),
              attempt: 9,
              retryTime: now.toISOString(),
            },
          },
        },
      }),
      refusal: refusal("r1"),
    });
    assert.equal(d.status.run?.refused?.attempt, 10);
    assert.equal(d.status.run?.refused?.retryTime, new Date(now.getTime() + 600_000).toISOString());
  });
});
