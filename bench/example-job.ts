// The job module the runtime benchmark runs (`node runtime/src/main.ts bench/example-job.ts`):
// an example built from its config with a name and topics of this run's own (BENCH_EXAMPLE,
// BENCH_JOB, BENCH_INPUT, BENCH_OUTPUT), so that every run has fresh topics, internal topics
// and consumer groups on the shared cluster.
import { clicksPerUser } from "../runtime/examples/clicks-per-user.ts";
import { filterEnrich } from "../runtime/examples/filter-enrich.ts";
import { required } from "../runtime/src/placement.ts";

const examples = { "filter-enrich": filterEnrich, "clicks-per-user": clicksPerUser };

const example = required("BENCH_EXAMPLE");
if (!(example in examples)) throw new Error(`BENCH_EXAMPLE: no example named ${example}`);
export default examples[example as keyof typeof examples]({
  name: required("BENCH_JOB"),
  input: required("BENCH_INPUT"),
  output: required("BENCH_OUTPUT"),
});
