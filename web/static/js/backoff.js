// Exponential back-off with jitter, for the pages that reconnect by themselves (the
// watch page's WHEP, the studio's WHIP). Jitter matters here: when a relay or a host
// comes back, every viewer of the show retries at once without it.

export class Backoff {
  /** Delays grow from `base` by `factor` up to `max` (ms); each is spread by ±`jitter`. */
  constructor({ base = 1000, max = 15000, factor = 2, jitter = 0.3 } = {}) {
    Object.assign(this, { base, max, factor, jitter });
    this.attempt = 0;
  }

  /** The delay before the next attempt; counts the attempt. */
  next() {
    const plain = Math.min(this.max, this.base * this.factor ** this.attempt);
    this.attempt += 1;
    const spread = 1 + this.jitter * (2 * Math.random() - 1);
    return Math.round(Math.min(this.max, plain * spread));
  }

  reset() {
    this.attempt = 0;
  }
}

/** A promise for `ms` milliseconds that an AbortSignal ends early (resolving false). */
export function sleep(ms, signal) {
  return new Promise((resolve) => {
    if (signal && signal.aborted) {
      resolve(false);
      return;
    }
    const timer = setTimeout(() => {
      if (signal) signal.removeEventListener('abort', early);
      resolve(true);
    }, ms);
    const early = () => {
      clearTimeout(timer);
      resolve(false);
    };
    if (signal) signal.addEventListener('abort', early, { once: true });
  });
}
