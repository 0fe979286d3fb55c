// What is due when, for timers and windows: a min-heap of (time, order, key, id), so that
// advancing time looks at what is due instead of scanning every key's state.
//
// The index holds hints, not truth: state (TaskState) is the truth. Every write of a timer or
// window adds an entry for the time it is due at; deletions and rollbacks leave entries behind,
// and whoever pops an entry checks it against state before acting (`stale` entries are
// skipped). Nothing here is snapshotted: a restored task rebuilds its index from its state.

export interface DueEntry {
  /** When the entry is due (a timer's time; a window's firing or purge time). */
  at: number;
  /** Tie-breaker before the key (a window's start), so firing order is deterministic. */
  order: number;
  key: string;
  id: string;
}

function before(a: DueEntry, b: DueEntry): boolean {
  if (a.at !== b.at) return a.at < b.at;
  if (a.order !== b.order) return a.order < b.order;
  if (a.key !== b.key) return a.key < b.key;
  return a.id < b.id;
}

export class DueIndex {
  readonly #heap: DueEntry[] = [];

  get size(): number {
    return this.#heap.length;
  }

  add(entry: DueEntry): void {
    const heap = this.#heap;
    heap.push(entry);
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(entry, heap[parent] as DueEntry)) break;
      heap[i] = heap[parent] as DueEntry;
      i = parent;
    }
    heap[i] = entry;
  }

  /** The earliest entry due at or before `time`, removed; undefined when none is. */
  popDue(time: number): DueEntry | undefined {
    const heap = this.#heap;
    const top = heap[0];
    if (top === undefined || top.at > time) return undefined;
    const last = heap.pop() as DueEntry;
    if (heap.length > 0) {
      let i = 0;
      for (;;) {
        const left = 2 * i + 1;
        if (left >= heap.length) break;
        const right = left + 1;
        const child =
          right < heap.length && before(heap[right] as DueEntry, heap[left] as DueEntry)
            ? right
            : left;
        if (!before(heap[child] as DueEntry, last)) break;
        heap[i] = heap[child] as DueEntry;
        i = child;
      }
      heap[i] = last;
    }
    return top;
  }

  /** The earliest time anything is due (+∞ when nothing is). */
  get next(): number {
    return this.#heap[0]?.at ?? Number.POSITIVE_INFINITY;
  }
}

/** Sorts entries popped from several indexes into the one order an index keeps. */
export function inDueOrder(entries: DueEntry[]): DueEntry[] {
  return entries.sort((a, b) => (before(a, b) ? -1 : before(b, a) ? 1 : 0));
}
