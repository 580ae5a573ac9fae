// The show's Socket.IO connection. Room events may arrive one by one or batched as
// `batch` [[event, data], ...]; both go through the same handlers, in order.
import { io } from '/static/vendor/socket.io.esm.min.js';
import { t } from './page.js';

export function connectShow({ show, token, coview }) {
  const handlers = new Map();
  let lastChatId = null;
  const dispatch = (event, data) => {
    if (event === 'chat' && data && Number.isInteger(data.id)) lastChatId = Math.max(lastChatId ?? 0, data.id);
    for (const handler of handlers.get(event) || []) {
      try {
        handler(data);
      } catch (err) {
        console.error(`handler of ${event} failed`, err);
      }
    }
  };
  // A function, so a reconnect sends the last message seen and the server replays
  // only what was missed. Without a token the server reads the session cookie.
  const socket = io({
    auth: (send) => {
      const auth = { show };
      if (token) auth.token = token;
      if (coview) auth.coview = coview;
      if (lastChatId !== null) auth.last_id = lastChatId;
      send(auth);
    },
  });
  socket.onAny((event, data) => {
    if (event === 'batch') {
      if (!Array.isArray(data)) return;
      for (const item of data) if (Array.isArray(item) && typeof item[0] === 'string') dispatch(item[0], item[1]);
    } else {
      dispatch(event, data);
    }
  });
  for (const event of ['connect', 'disconnect', 'connect_error']) {
    socket.on(event, (data) => dispatch(event, data));
  }

  return {
    socket,
    on(event, handler) {
      if (!handlers.has(event)) handlers.set(event, []);
      handlers.get(event).push(handler);
    },
    /** Emits and resolves with the ack ({ok: true, ...} or {ok: false, error, message}). */
    request(event, data, timeoutMs = 8000) {
      return new Promise((resolve) => {
        socket.timeout(timeoutMs).emit(event, data, (err, reply) => {
          if (err) resolve({ ok: false, error: 'timeout', message: t('network_error') });
          else resolve(reply && typeof reply === 'object' ? reply : { ok: false, error: 'no_reply' });
        });
      });
    },
  };
}
