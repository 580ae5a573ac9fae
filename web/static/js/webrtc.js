// WHIP (publish) and WHEP (play) from the browser. The server takes no trickle ICE,
// so the offer goes out once gathering is complete (or after a short wait).

export class HttpError extends Error {
  constructor(status, data) {
    super((data && data.message) || `HTTP ${status}`);
    this.status = status;
    this.data = data || {};
  }
}

async function iceServers() {
  try {
    const response = await fetch('/api/ice-servers');
    if (response.ok) return (await response.json()).ice_servers || [];
  } catch {
    // no TURN: host candidates still work on one network
  }
  return [];
}

function gathered(pc, timeoutMs = 2500) {
  if (pc.iceGatheringState === 'complete') return Promise.resolve();
  return new Promise((resolve) => {
    const check = () => {
      if (pc.iceGatheringState === 'complete') {
        pc.removeEventListener('icegatheringstatechange', check);
        resolve();
      }
    };
    pc.addEventListener('icegatheringstatechange', check);
    setTimeout(resolve, timeoutMs);
  });
}

/** Whether a failed WHIP/WHEP POST may succeed if tried again later: no answer at all
 * (network, or our own time-out aborted it), 409 (the show is not live yet, or its
 * old publisher is still held), rate limits and server errors. A refused offer or
 * token, or an unknown show, will not get better by waiting. */
export function isTransient(err) {
  if (!(err instanceof HttpError)) return true;
  return err.status === 409 || err.status === 429 || err.status >= 500;
}

async function exchange(url, pc, headers, signal) {
  await pc.setLocalDescription(await pc.createOffer());
  await gathered(pc);
  if (signal && signal.aborted) throw new DOMException('aborted', 'AbortError');
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'Content-Type': 'application/sdp', ...headers },
    body: pc.localDescription.sdp,
    signal,
  });
  if (response.status !== 201) {
    let data = {};
    try {
      data = await response.json();
    } catch {
      data = {};
    }
    throw new HttpError(response.status, data);
  }
  const location = new URL(response.headers.get('Location'), window.location.href).href;
  try {
    await pc.setRemoteDescription({ type: 'answer', sdp: await response.text() });
  } catch (err) {
    err.location = location; // the resource exists: the caller decides whether to leave it
    throw err;
  }
  return location;
}

/** Leaves a WHIP or WHEP resource (best effort: the relay reaps it anyway). */
export function leave(location, headers = {}) {
  if (!location) return Promise.resolve(null);
  return fetch(location, { method: 'DELETE', headers, keepalive: true }).catch(() => null);
}

/** Plays a live show in `video` (muted until the viewer asks for sound). `signal`
 * aborts the attempt (the POST included); `onState` gets each connection state. */
export async function play(showId, video, { onState = () => {}, signal } = {}) {
  const pc = new RTCPeerConnection({ iceServers: await iceServers() });
  pc.addTransceiver('video', { direction: 'recvonly' });
  pc.addTransceiver('audio', { direction: 'recvonly' });
  const stream = new MediaStream();
  pc.addEventListener('track', (event) => {
    stream.addTrack(event.track);
    if (video.srcObject !== stream) video.srcObject = stream;
    video.play().catch(() => {});
  });
  pc.addEventListener('connectionstatechange', () => onState(pc.connectionState));
  let location;
  try {
    location = await exchange(`/whep/${encodeURIComponent(showId)}`, pc, {}, signal);
  } catch (err) {
    pc.close();
    leave(err.location);
    throw err;
  }
  return {
    pc,
    location,
    stop() {
      pc.close();
      leave(location);
    },
  };
}

/** Caps the layer a WHEP session receives from a simulcast show ("auto", "high",
 * "medium" or "low"; a single-layer show ignores it). Resolves to the response, or
 * null when the request could not be sent. */
export function setQuality(location, quality) {
  return fetch(`${location}/quality`, {
    method: 'PUT',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ max_quality: quality }),
  }).catch(() => null);
}

/** One full picture at `maxBitrate`; also what is left of a simulcast offer that
 * the answer refused (the browser then keeps the first encoding: the quarter picture). */
async function capBitrate(sender, maxBitrate) {
  const params = sender.getParameters();
  if (!params.encodings || params.encodings.length === 0) params.encodings = [{}];
  for (const encoding of params.encodings) {
    encoding.maxBitrate = maxBitrate;
    if (encoding.scaleResolutionDownBy) encoding.scaleResolutionDownBy = 1;
  }
  await sender.setParameters(params);
}

// Simulcast (RFC 8853): three pictures of the camera, smallest first; the relay sends
// each viewer the one its link carries (or the one it asked for). Each layer's
// maxBitrate caps it, so no capBitrate then.
export const SIMULCAST_LAYERS = [
  { rid: 'q', scaleResolutionDownBy: 4, maxBitrate: 150_000 },
  { rid: 'h', scaleResolutionDownBy: 2, maxBitrate: 500_000 },
  { rid: 'f', scaleResolutionDownBy: 1, maxBitrate: 1_500_000 },
];
// Below this capture Chromium sends fewer layers than it offers (at 640x360 its top
// layer stays at 0 bytes), so a smaller camera publishes one layer.
const SIMULCAST_MIN = { width: 1280, height: 720 };

/** How many video layers to publish `track` with: 3 from a 1280x720 capture (either
 * orientation) up, else 1. */
export function layersFor(track) {
  if (!track) return 1;
  const { width = 0, height = 0 } = track.getSettings();
  const long = Math.max(width, height);
  const short = Math.min(width, height);
  return long >= SIMULCAST_MIN.width && short >= SIMULCAST_MIN.height ? SIMULCAST_LAYERS.length : 1;
}

function addVideo(pc, track, stream, layers) {
  if (layers > 1) {
    try {
      const sendEncodings = SIMULCAST_LAYERS.map((layer) => ({ ...layer }));
      return { sender: pc.addTransceiver(track, { direction: 'sendonly', streams: [stream], sendEncodings }).sender, layers: sendEncodings.length };
    } catch {
      // a browser without simulcast: one layer, as before
    }
  }
  return { sender: pc.addTransceiver(track, { direction: 'sendonly', streams: [stream] }).sender, layers: 1 };
}

/** Publishes `stream` to a show over WHIP, with `layers` video layers (3: simulcast,
 * see SIMULCAST_LAYERS; 1: one picture capped at `maxBitrate`, the relay forwarding
 * that to every viewer). The same call resumes a show whose publisher was lost (the
 * relay holds it "reconnecting" for a while): a resume must offer as many layers as
 * the show was published with, or the relay answers 400 bad_offer. The result's
 * `layers` says how many were offered (1 where the browser refused simulcast). */
export async function publish(showId, stream, token, { maxBitrate = 1_500_000, layers = 1, signal } = {}) {
  const pc = new RTCPeerConnection({ iceServers: await iceServers() });
  const senders = {};
  let offered = 0;
  for (const track of stream.getTracks()) {
    if (track.kind === 'video') {
      ({ sender: senders.video, layers: offered } = addVideo(pc, track, stream, layers));
    } else {
      senders[track.kind] = pc.addTransceiver(track, { direction: 'sendonly', streams: [stream] }).sender;
    }
  }
  const headers = { Authorization: `Bearer ${token}` };
  let location;
  try {
    location = await exchange(`/whip/${encodeURIComponent(showId)}`, pc, headers, signal);
    // A relay without simulcast answers without a=simulcast: one layer then.
    if (offered > 1 && !/^a=simulcast:recv /m.test(pc.remoteDescription.sdp)) offered = 1;
    if (senders.video && offered === 1) await capBitrate(senders.video, maxBitrate);
  } catch (err) {
    // No DELETE even if the relay made a resource: DELETE ends the show, while a
    // publisher that never connects only puts it in "reconnecting" for the next try.
    pc.close();
    throw err;
  }
  return {
    pc,
    senders,
    location,
    layers: offered,
    async replaceTrack(track) {
      const sender = senders[track.kind];
      if (sender) await sender.replaceTrack(track);
    },
    async stop() {
      let response = null;
      try {
        response = await fetch(location, { method: 'DELETE', headers });
      } finally {
        pc.close();
      }
      return response;
    },
  };
}
