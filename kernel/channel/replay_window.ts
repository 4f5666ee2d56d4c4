/**
 * A sliding replay window over packet counters (RFC 6479's idea, simplified):
 * the highest counter seen and a bitmap of the {@linkcode REPLAY_WINDOW}
 * counters below it. A counter is fresh when it is above the window's floor
 * and not yet marked. NZ-DGRAM-01 section "Replay window".
 *
 * @module
 */

/** How many counters below the highest seen are still accepted (a multiple of 32). */
export const REPLAY_WINDOW = 4096;

const WORDS = REPLAY_WINDOW / 32;

/** The receive side's record of which counters it has accepted. */
export class ReplayWindow {
  /** The highest counter marked, or -1. */
  #top = -1;
  /** Bit `c % REPLAY_WINDOW` is set when counter c (within the window) was marked. */
  #bits = new Uint32Array(WORDS);

  /** The highest counter marked so far, or -1. */
  get highest(): number {
    return this.#top;
  }

  /** Whether `counter` may still be accepted: within the window and not marked. Does not mark it. */
  fresh(counter: number): boolean {
    if (counter > this.#top) return true;
    if (counter <= this.#top - REPLAY_WINDOW || counter < 0) return false;
    const slot = counter % REPLAY_WINDOW;
    return (this.#bits[slot >>> 5] & (1 << (slot & 31))) === 0;
  }

  /**
   * Marks `counter` as accepted; call only after the packet authenticated.
   * Returns false (and marks nothing) when it was not fresh.
   */
  mark(counter: number): boolean {
    if (!this.fresh(counter)) return false;
    if (counter > this.#top) {
      // Clear the slots the window slides over.
      const shift = counter - this.#top;
      if (shift >= REPLAY_WINDOW) this.#bits.fill(0);
      else {
        for (let c = this.#top + 1; c <= counter; c++) {
          const slot = c % REPLAY_WINDOW;
          this.#bits[slot >>> 5] &= ~(1 << (slot & 31));
        }
      }
      this.#top = counter;
    }
    const slot = counter % REPLAY_WINDOW;
    this.#bits[slot >>> 5] |= 1 << (slot & 31);
    return true;
  }
}
