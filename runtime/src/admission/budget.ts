/**
 * The global budget of request bytes held in memory at once (MAX_BUFFERED_REQUEST_BYTES).
 * Protocol-neutral: the REST transport reserves a body's declared length before
 * reading it, and chunked or inflated bodies as their bytes arrive; whatever a
 * request reserved is given back when it finishes, however it finishes.
 *
 * The budget counts bytes, not objects: a parsed JSON request holds more than its
 * text. It bounds what a burst of large bodies can take, which is what kills a pod.
 */

export interface BudgetHooks {
  /** Called with the bytes held after every change (the gauge). */
  changed?: (used: number) => void;
  /** Called when a reservation is refused. */
  refused?: (bytes: number) => void;
}

export class ByteBudget {
  private held = 0;

  constructor(
    readonly limit: number,
    private readonly hooks: BudgetHooks = {},
  ) {
    if (!(limit > 0)) throw new RangeError(`a byte budget needs a positive limit, not ${limit}`);
  }

  /** Bytes reserved now. */
  get used(): number {
    return this.held;
  }

  /** Reserves `bytes` when they fit; false (and nothing reserved) when they do not. */
  tryReserve(bytes: number): boolean {
    if (bytes <= 0) return true;
    if (this.held + bytes > this.limit) {
      this.hooks.refused?.(bytes);
      return false;
    }
    this.held += bytes;
    this.hooks.changed?.(this.held);
    return true;
  }

  release(bytes: number): void {
    if (bytes <= 0) return;
    this.held = Math.max(0, this.held - bytes);
    this.hooks.changed?.(this.held);
  }

  /** A reservation for one request: grows as bytes arrive, given back once by release(). */
  reservation(): Reservation {
    return new Reservation(this);
  }
}

/** What one request holds of the budget. release() is idempotent; add() after it reserves nothing more. */
export class Reservation {
  private bytes = 0;
  private released = false;
  /** The declared body length was reserved up front (bytes read then need no more). */
  declared = false;

  constructor(readonly budget: ByteBudget) {}

  /** Bytes this request holds. */
  get held(): number {
    return this.bytes;
  }

  /** Reserves `bytes` more; false when the budget cannot hold them (nothing is reserved then). */
  add(bytes: number): boolean {
    if (this.released) return true;
    if (!this.budget.tryReserve(bytes)) return false;
    this.bytes += bytes;
    return true;
  }

  /** Gives back `bytes` of what this request holds (a buffer it no longer keeps). */
  shrink(bytes: number): void {
    const n = Math.min(bytes, this.bytes);
    this.bytes -= n;
    this.budget.release(n);
  }

  release(): void {
    if (this.released) return;
    this.released = true;
    this.budget.release(this.bytes);
    this.bytes = 0;
  }
}
