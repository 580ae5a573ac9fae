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

async function capBitrate(sender, maxBitrate) {
  const params = sender.getParameters();
  if (!params.encodings || params.encodings.length === 0) params.encodings = [{}];
  for (const encoding of params.encodings) encoding.maxBitrate = maxBitrate;
  await sender.setParameters(params);
}

/** Publishes `stream` to a show over WHIP. The relay forwards the same bitrate to
 * every viewer (no simulcast), so the video is capped here. The same call resumes a
 * show whose publisher was lost (the relay holds it "reconnecting" for a while). */
export async function publish(showId, stream, token, { maxBitrate = 1_500_000, signal } = {}) {
  const pc = new RTCPeerConnection({ iceServers: await iceServers() });
  const senders = {};
  for (const track of stream.getTracks()) {
    senders[track.kind] = pc.addTransceiver(track, { direction: 'sendonly', streams: [stream] }).sender;
  }
  const headers = { Authorization: `Bearer ${token}` };
  let location;
  try {
    location = await exchange(`/whip/${encodeURIComponent(showId)}`, pc, headers, signal);
    if (senders.video) await capBitrate(senders.video, maxBitrate);
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
