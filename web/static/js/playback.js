// The watch page's live video, kept going by itself. A viewer must never be left in
// front of a silent black box: every way a WHEP session goes wrong ends in a new join
// after a back-off, and each step is reported through `onChange` so the page can say
// in words what is happening.
//
//   what goes wrong                        what is done
//   the POST fails or hangs                join again later; a 409 show_not_live too,
//                                          while the show is live or reconnecting (a
//                                          relay that restarted, a viewer ahead of it)
//   not "connected" within connectMs       leave (DELETE) and join again
//   "disconnected"                         wait disconnectedGraceMs (ICE often comes
//                                          back by itself), then join again
//   "failed" or "closed"                   join again
//   connected, but no frame decoded        "stalled" after stallMs, join again after
//                                          stallRejoinMs; not while the host is
//                                          reconnecting (no media is expected then,
//                                          and the relay keeps our session for them)
//
// The viewer's quality choice (a cap on a simulcast show's layer) belongs to the
// player, not to one session: every new session gets it right after its answer.
import { Backoff, sleep } from './backoff.js';
import { isTransient, play, setQuality } from './webrtc.js';

/** The viewer's choices, best picture first after "auto" (the relay's own pick). */
export const QUALITIES = ['auto', 'high', 'medium', 'low'];

// Milliseconds; one object, so the browser tests can shorten them through the module.
export const TIMING = {
  connectMs: 8000,
  disconnectedGraceMs: 3000,
  stallMs: 3000,
  // Longer than the relay's media_timeout (10 s): when the publisher is what stopped,
  // the relay's "reconnecting" comes first and this viewer keeps its session.
  stallRejoinMs: 12000,
  healthyMs: 10000, // playing this long resets the back-off (a flapping link keeps it)
  probeMs: 1000,
  qualityRetryMs: 1000, // a quality PUT that got no answer or a 5xx, tried 3 times
};

/** Progress of the session's media: frames decoded (or, for a show without video,
 * audio packets received). Read from getStats, which counts while the tab is hidden
 * too, unlike requestVideoFrameCallback, so a background tab is not called stalled. */
async function mediaProgress(pc) {
  let stats;
  try {
    stats = await pc.getStats();
  } catch {
    return 0;
  }
  const hasVideo = pc.getTransceivers().some(
    (tr) => tr.receiver.track && tr.receiver.track.kind === 'video' && tr.currentDirection && tr.currentDirection !== 'inactive',
  );
  let progress = 0;
  stats.forEach((report) => {
    if (report.type !== 'inbound-rtp') return;
    if (hasVideo && report.kind === 'video') progress += report.framesDecoded || 0;
    if (!hasVideo && report.kind === 'audio') progress += report.packetsReceived || 0;
  });
  return progress;
}

export class LivePlayer {
  /** `onChange(state)` hears each state: idle, connecting, playing, stalled,
   * reconnecting (waiting to join again, or joining again), failed, ended. */
  constructor(showId, video, onChange = () => {}) {
    this.showId = showId;
    this.video = video;
    this.onChange = onChange;
    this.backoff = new Backoff({ base: 1000, max: 15000 });
    this.state = 'idle';
    this.reason = null; // why the last session was dropped (for debugging and tests)
    this.wanted = false; // the show is live or reconnecting: hold a session
    this.hostAway = false; // the show is reconnecting: the relay has no publisher now
    this.generation = 0; // bumped by every join and teardown: late callbacks are ignored
    this.session = null;
    this.joining = false;
    this.abort = null;
    this.timers = {};
    this.probeTimer = null;
    this.progress = 0;
    this.lastProgressAt = 0;
    this.playingSince = 0;
    this.joins = 0;
    this.quality = 'auto'; // the viewer's cap on the layer (auto: the relay decides)
    this.qualityApplied = null; // {location, quality} the relay last accepted
  }

  /** The viewer's quality choice: sent at once if a session is up, and after every
   * join ("auto" is where a new session starts, so it needs no request then). */
  setQuality(quality) {
    if (!QUALITIES.includes(quality)) return;
    this.quality = quality;
    if (this.session) this.sendQuality(this.session);
  }

  async sendQuality(session) {
    const quality = this.quality;
    for (let attempt = 0; attempt < 3; attempt += 1) {
      if (attempt > 0) await sleep(TIMING.qualityRetryMs * 2 ** (attempt - 1));
      if (session !== this.session || quality !== this.quality) return; // superseded
      const response = await setQuality(session.location, quality);
      if (response && response.ok) {
        if (session === this.session) this.qualityApplied = { location: session.location, quality };
        return;
      }
      // 4xx: the session is gone (the watchdog replaces it) or the choice is refused
      if (response && response.status < 500 && response.status !== 429) return;
    }
  }

  /** Follows the show's status: live and reconnecting hold a session, others drop it. */
  setShowStatus(status) {
    const wasAway = this.hostAway;
    this.hostAway = status === 'reconnecting';
    if (status !== 'live' && status !== 'reconnecting') {
      this.stop();
      this.setState(status === 'ended' ? 'ended' : 'idle');
      return;
    }
    this.wanted = true;
    this.startProbe();
    // The host is back: the relay sends a keyframe soon, so a stall counts from now.
    if (wasAway && !this.hostAway) this.lastProgressAt = performance.now();
    if (this.session || this.joining) return;
    // Without a session, join now; "live" also cuts a pending back-off short: the
    // refusals (409 show_not_live) were most likely the show not being published yet.
    if (status === 'live' && this.timers.retry) this.backoff.reset();
    if (status === 'live' || !this.timers.retry) this.join();
  }

  /** Leaves for good (the show ended, or the page goes away). */
  stop() {
    this.wanted = false;
    this.teardown();
    clearInterval(this.probeTimer);
    this.probeTimer = null;
  }

  async join() {
    this.clearTimer('retry');
    const generation = ++this.generation;
    this.joins += 1;
    this.joining = true;
    this.progress = 0;
    this.setState(this.joins === 1 ? 'connecting' : 'reconnecting');
    const abort = new AbortController();
    this.abort = abort;
    this.setTimer('connect', TIMING.connectMs, () => this.connectTimedOut(generation));
    try {
      const session = await play(this.showId, this.video, {
        signal: abort.signal,
        onState: (state) => this.connectionChanged(generation, state),
      });
      if (generation !== this.generation) {
        session.stop(); // dropped while the answer was on its way
        return;
      }
      this.session = session;
      this.joining = false;
      if (this.quality !== 'auto') this.sendQuality(session);
      this.connectionChanged(generation, session.pc.connectionState);
    } catch (err) {
      if (generation !== this.generation) return; // our own teardown aborted it
      this.joining = false;
      this.clearTimer('connect');
      if (isTransient(err)) this.retry(err.status === 409 ? 'not_live' : 'join_failed');
      else this.fail();
    }
  }

  connectTimedOut(generation) {
    const pc = this.session && this.session.pc;
    if (generation === this.generation && (!pc || pc.connectionState !== 'connected')) this.retry('connect_timeout');
  }

  connectionChanged(generation, state) {
    if (generation !== this.generation) return;
    if (state === 'connected') {
      this.clearTimer('connect');
      this.clearTimer('grace');
      this.lastProgressAt = performance.now(); // a stall counts from the connection
    } else if (state === 'disconnected') {
      if (!this.timers.grace) this.setTimer('grace', TIMING.disconnectedGraceMs, () => this.retry('disconnected'));
    } else if (state === 'failed' || state === 'closed') {
      this.retry(state);
    }
  }

  /** Drops the session and joins again after the back-off. */
  retry(reason) {
    if (!this.wanted) return;
    this.teardown();
    this.reason = reason;
    this.setState('reconnecting');
    this.setTimer('retry', this.backoff.next(), () => this.join());
  }

  /** A refusal that waiting will not change (a bad offer, an unknown show). */
  fail() {
    this.teardown();
    this.setState('failed');
  }

  teardown() {
    this.generation += 1;
    this.joining = false;
    for (const name of Object.keys(this.timers)) this.clearTimer(name);
    if (this.abort) this.abort.abort();
    this.abort = null;
    if (this.session) this.session.stop(); // closes the connection and DELETEs the resource
    this.session = null;
  }

  // --- the frame watchdog -------------------------------------------------------

  startProbe() {
    if (!this.probeTimer) this.probeTimer = setInterval(() => this.probe(), TIMING.probeMs);
  }

  async probe() {
    const session = this.session;
    if (!session || session.pc.connectionState !== 'connected') return;
    const progress = await mediaProgress(session.pc);
    if (session !== this.session) return;
    const now = performance.now();
    if (progress > this.progress) {
      this.progress = progress;
      this.lastProgressAt = now;
      this.playing(now);
      return;
    }
    if (this.hostAway) {
      this.lastProgressAt = now; // nothing is expected until the host is back
      return;
    }
    const still = now - this.lastProgressAt;
    if (still >= TIMING.stallRejoinMs) this.retry('stalled');
    else if (still >= TIMING.stallMs && this.state === 'playing') this.setState('stalled');
  }

  playing(now) {
    if (this.state !== 'playing') {
      this.playingSince = now;
      this.setState('playing');
    } else if (now - this.playingSince > TIMING.healthyMs) {
      this.backoff.reset();
    }
  }

  // --- small things -----------------------------------------------------------------

  setState(state) {
    const changed = state !== this.state;
    this.state = state;
    if (changed || state === 'reconnecting') this.onChange(state);
  }

  setTimer(name, ms, run) {
    this.clearTimer(name);
    this.timers[name] = setTimeout(() => {
      delete this.timers[name];
      run();
    }, ms);
  }

  clearTimer(name) {
    clearTimeout(this.timers[name]);
    delete this.timers[name];
  }
}
