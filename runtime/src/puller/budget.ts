/** The --max-bytes limit, shared by every file of one pull (downloads and extraction). */
import { TooLargeError } from "./errors.js";

export class ByteBudget {
  private used = 0;

  constructor(
    readonly limit: number | undefined,
    private readonly what = "the model",
  ) {}

  get total(): number {
    return this.used;
  }

  /** Fails fast when a size announced up front would not fit. */
  check(additional: number, what = this.what): void {
    if (this.limit !== undefined && this.used + additional > this.limit) {
      throw new TooLargeError(what, this.limit, this.used + additional, true);
    }
  }

  /** Counts bytes as they arrive; throws once the limit is crossed. */
  take(n: number, what = this.what): void {
    this.used += n;
    if (this.limit !== undefined && this.used > this.limit) throw new TooLargeError(what, this.limit, this.used, false);
  }

  /** Gives bytes back (a download that restarts from zero). */
  giveBack(n: number): void {
    this.used = Math.max(0, this.used - n);
  }
}
