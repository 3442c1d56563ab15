/**
 * The one cell a guest's thread sleeps on while it waits for a descriptor or a clock. Whatever can
 * make one of the run's descriptors ready (a stdin pump, a socket, a pipe's other end, a child
 * that exits) calls `wake()` from any thread; poll_oneoff and blocking reads sleep with `sleep()`.
 * One cell per run, not one per descriptor, so that a poll over many kinds of descriptor needs
 * no thread of its own.
 */
export class Waker {
  /** `cell` may be shared with other threads (a SharedArrayBuffer-backed Int32Array of length ≥ 1). */
  constructor(readonly cell: Int32Array = new Int32Array(new SharedArrayBuffer(4))) {}

  /** The current generation: read it before checking readiness, then sleep on it, so that a
   * wake that comes between the check and the sleep is not lost. */
  get seq(): number {
    return Atomics.load(this.cell, 0);
  }

  /** Wakes the guest's thread if it sleeps; callable from any thread that holds the cell. */
  wake(): void {
    Atomics.add(this.cell, 0, 1);
    Atomics.notify(this.cell, 0);
  }

  /** Blocks until woken after generation `seq`, or until `ms` milliseconds pass (Infinity: no limit). */
  sleep(seq: number, ms: number): void {
    Atomics.wait(this.cell, 0, seq, ms);
  }
}
