// Sign-in and registration forms: the API validates, its field errors show in place.
import { $, api, clearErrors, page, showErrors, t } from './page.js';

const next = page.next || '/';

async function signIn(form, email, password) {
  const reply = await api('POST', '/api/auth/login', { email, password });
  if (reply.ok) {
    window.location.assign(next);
    return;
  }
  showErrors(form, reply.data, reply.status === 401 ? t('wrong_password') : undefined);
}

const loginForm = $('login-form');
if (loginForm) {
  loginForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(loginForm);
    const button = loginForm.querySelector('button[type=submit]');
    button.disabled = true;
    try {
      await signIn(loginForm, loginForm.email.value, loginForm.password.value);
    } finally {
      button.disabled = false;
    }
  });
}

// The country field shows a country's name in the page's language (the datalist's
// labels, CLDR names from the server) and the API gets its ISO code: a code typed or
// picked from the list (a datalist option's value) turns into the name, a name typed in
// full is sent as its code, anything else is sent as typed for the API to refuse.
const fold = (text) => text.normalize('NFC').trim().toLocaleLowerCase();

function countryField(input) {
  const list = input.list;
  const byCode = new Map();
  const byName = new Map();
  for (const option of list ? list.options : []) {
    byCode.set(option.value, option.textContent);
    byName.set(fold(option.textContent), option.value);
  }
  const toName = () => {
    const name = byCode.get(input.value.trim().toUpperCase());
    if (name) input.value = name;
  };
  // A pick from the list arrives as an input event without inputType (or a replacement);
  // typing "ru" on the way to "Russia" must not be replaced.
  input.addEventListener('input', (event) => {
    if (!event.inputType || event.inputType === 'insertReplacementText') toName();
  });
  input.addEventListener('change', toName);
  return () => byName.get(fold(input.value)) || input.value.trim().toUpperCase();
}

const registerForm = $('register-form');
if (registerForm) {
  const countryCode = countryField(registerForm.country);
  registerForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(registerForm);
    const form = registerForm;
    const body = {
      name: form.name.value,
      email: form.email.value,
      password: form.password.value,
      country: countryCode(),
      role: form.role.value,
    };
    if (form.city.value.trim()) body.city = form.city.value;
    const button = form.querySelector('button[type=submit]');
    button.disabled = true;
    try {
      const reply = await api('POST', '/api/auth/register', body);
      if (reply.ok) await signIn(form, body.email, body.password);
      else showErrors(form, reply.data);
    } finally {
      button.disabled = false;
    }
  });
}

// Password reset: the e-mail's link carries the token in the #fragment (kept out of
// server logs and Referer); without one the page asks for the e-mail address.
const resetRequest = $('reset-request-form');
const resetConfirm = $('reset-confirm-form');
if (resetRequest && resetConfirm) {
  const token = new URLSearchParams(window.location.hash.slice(1)).get('token');
  if (token) {
    resetRequest.hidden = true;
    resetConfirm.hidden = false;
  }
  resetRequest.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(resetRequest);
    const reply = await api('POST', '/api/auth/password-reset', { email: resetRequest.email.value });
    if (reply.ok) {
      resetRequest.hidden = true;
      $('reset-sent').hidden = false;
    } else showErrors(resetRequest, reply.data);
  });
  resetConfirm.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(resetConfirm);
    const reply = await api('POST', '/api/auth/password-reset/confirm',
      { token, new_password: resetConfirm.new_password.value });
    if (reply.ok) {
      resetConfirm.hidden = true;
      history.replaceState(null, '', window.location.pathname);  // the used token leaves the address bar
      $('reset-done').hidden = false;
    } else showErrors(resetConfirm, reply.data);
  });
}
