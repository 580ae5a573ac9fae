// Runs on every page: local times, the time-zone note, signing out, and the emoji check.
import { $, api, formatTimes } from './page.js';

formatTimes();
const zone = $('tz');
if (zone) zone.textContent = `(${Intl.DateTimeFormat().resolvedOptions().timeZone})`;

const logout = $('logout');
if (logout) {
  logout.addEventListener('click', async () => {
    await api('POST', '/api/auth/logout');
    window.location.assign('/');
  });
}

/** Whether the device draws emoji in colour. Without an emoji font a reaction would be
 * an empty box: the page then marks <html class="no-emoji"> and the CSS shows each
 * reaction's name (its aria-label) instead. A colour font leaves non-grey pixels. */
export function hasColorEmoji() {
  const canvas = document.createElement('canvas');
  canvas.width = canvas.height = 24;
  const context = canvas.getContext('2d', { willReadFrequently: true });
  if (!context) return true; // cannot tell: keep the emoji
  context.textBaseline = 'top';
  context.font = '20px "Apple Color Emoji", "Segoe UI Emoji", "Noto Color Emoji", sans-serif';
  context.fillText('\u{1F44F}', 0, 0); // 👏, absent from text fonts
  const pixels = context.getImageData(0, 0, 24, 24).data;
  for (let i = 0; i < pixels.length; i += 4) {
    if (pixels[i + 3] && (pixels[i] !== pixels[i + 1] || pixels[i + 1] !== pixels[i + 2])) return true;
  }
  return false;
}

if (document.querySelector('.reaction') && !hasColorEmoji()) document.documentElement.classList.add('no-emoji');
