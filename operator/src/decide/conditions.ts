// Status conditions the Kubernetes way: one entry per type, `lastTransitionTime` moves only
// when the status flips, and each carries the generation it was computed from.
import type { Condition } from "../api/types.ts";

export type ConditionType = "Ready" | "Progressing" | "Degraded";

export interface ConditionInput {
  type: ConditionType;
  status: "True" | "False" | "Unknown";
  reason: string;
  message: string;
}

export function setCondition(
  conditions: readonly Condition[] | undefined,
  input: ConditionInput,
  generation: number,
  now: Date,
): Condition[] {
  const previous = conditions?.find((c) => c.type === input.type);
  const next: Condition = {
    ...input,
    observedGeneration: generation,
    lastTransitionTime:
      previous && previous.status === input.status && previous.lastTransitionTime
        ? previous.lastTransitionTime
        : now.toISOString(),
  };
  return [...(conditions ?? []).filter((c) => c.type !== input.type), next].sort((a, b) =>
    a.type.localeCompare(b.type),
  );
}

export function conditionOf(
  conditions: readonly Condition[] | undefined,
  type: ConditionType,
): Condition | undefined {
  return conditions?.find((c) => c.type === type);
}
