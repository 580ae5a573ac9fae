// Runs on every page: local times, the time-zone note and signing out.
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
