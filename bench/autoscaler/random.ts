// Seeded randomness, so every run of the simulator sees the same noise.

/** A uniform [0, 1) generator: the examples' seeded one (mulberry32). */
export { seededRandom as seeded } from "../../runtime/examples/golden.ts";

/** A standard normal draw (Box–Muller) from a uniform generator. */
export function normal(random: () => number): number {
  const u = 1 - random(); // (0, 1]: log(0) would be infinite
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * random());
}
