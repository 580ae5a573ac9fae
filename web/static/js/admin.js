// Admin page: scheduling a show through POST /api/shows (the one write API the page uses).
import { $, api, clearErrors, el, showErrors } from './page.js';

const form = $('show-form');
if (form) {
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(form);
    const local = form.scheduled_at.value;
    // datetime-local is the admin's wall clock: send it as an instant in UTC.
    const when = local ? new Date(local) : null;
    const body = {
      title: form.title.value,
      scheduled_at: when && !Number.isNaN(when.getTime()) ? when.toISOString() : local,
      host_id: Number(form.host_id.value),
      segments: form.segment_title.value.trim()
        ? [{ title: form.segment_title.value, committee: form.committee.value, product_ids: [] }]
        : [],
    };
    const reply = await api('POST', '/api/shows', body);
    const done = $('show-created');
    done.replaceChildren();
    if (!reply.ok) {
      showErrors(form, reply.data);
      return;
    }
    const link = el('a', { href: `/shows/${reply.data.id}` }, `#${reply.data.id} ${reply.data.title}`);
    done.append(link);
    form.reset();
  });
}
