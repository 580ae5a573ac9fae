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

async function exchange(url, pc, headers) {
  await pc.setLocalDescription(await pc.createOffer());
  await gathered(pc);
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'Content-Type': 'application/sdp', ...headers },
    body: pc.localDescription.sdp,
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
  await pc.setRemoteDescription({ type: 'answer', sdp: await response.text() });
  return location;
}

/** Plays a live show in `video` (muted until the viewer asks for sound). */
export async function play(showId, video, onState = () => {}) {
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
    location = await exchange(`/whep/${encodeURIComponent(showId)}`, pc, {});
  } catch (err) {
    pc.close();
    throw err;
  }
  return {
    pc,
    stop() {
      pc.close();
      fetch(location, { method: 'DELETE', keepalive: true }).catch(() => {});
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
 * every viewer (no simulcast), so the video is capped here. */
export async function publish(showId, stream, token, maxBitrate = 1_500_000) {
  const pc = new RTCPeerConnection({ iceServers: await iceServers() });
  const senders = {};
  for (const track of stream.getTracks()) {
    senders[track.kind] = pc.addTransceiver(track, { direction: 'sendonly', streams: [stream] }).sender;
  }
  const headers = { Authorization: `Bearer ${token}` };
  let location;
  try {
    location = await exchange(`/whip/${encodeURIComponent(showId)}`, pc, headers);
    if (senders.video) await capBitrate(senders.video, maxBitrate);
  } catch (err) {
    pc.close();
    throw err;
  }
  return {
    pc,
    senders,
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
