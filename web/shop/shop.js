'use strict';
// The demo storefront: three "phones", each a shopper signed in by the shop's backend
// (mock-shop mints its token). Phones A and B buy with a card on file (the server
// flow); phone C pays in the app (the mobile flow): checkout without a payment method,
// confirm the PaymentIntent at the provider with the publishable key and the
// client_secret, then tell checkoutd. Every value is put in with textContent.
(function () {
  let config = null;
  let raceItem = null;
  let appItem = null;
  const phones = {};

  function $(root, sel) { return root.querySelector(sel); }
  function money(minor, cur) { return (minor / 100).toFixed(2) + ' ' + String(cur).toUpperCase(); }
  function key() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    const b = new Uint8Array(16);
    crypto.getRandomValues(b);
    return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
  }

  async function json(res) {
    const text = await res.text();
    try { return text ? JSON.parse(text) : {}; } catch (e) { return { raw: text }; }
  }
  async function shop(method, path, body) {
    const res = await fetch(path, {
      method,
      headers: body ? { 'Content-Type': 'application/json' } : {},
      body: body ? JSON.stringify(body) : undefined,
    });
    return { status: res.status, body: await json(res) };
  }
  // A shopper's call to checkoutd, through the shop's backend, with the phone's token.
  async function api(phone, method, path, body, idem) {
    const headers = { Authorization: 'Bearer ' + phone.token };
    if (body) headers['Content-Type'] = 'application/json';
    if (idem) headers['Idempotency-Key'] = idem;
    const res = await fetch('/api' + path, {
      method, headers, body: body ? JSON.stringify(body) : undefined,
    });
    return { status: res.status, body: await json(res) };
  }

  function setResult(phone, outcome, title, detail) {
    const r = $(phone.el, '.result');
    r.dataset.outcome = outcome;
    r.textContent = title;
    if (detail) {
      const s = document.createElement('small');
      s.textContent = detail;
      r.appendChild(s);
    }
  }

  async function showItem(phone, item) {
    $(phone.el, '.pname').textContent = item.name;
    $(phone.el, '.price').textContent = money(item.price, item.currency);
    const r = await fetch('/api/v1/items/' + item.id);
    const now = await json(r);
    const st = $(phone.el, '.stock');
    const n = now.stock_available;
    st.textContent = n > 0 ? n + ' left' : 'sold out';
    st.classList.toggle('out', !(n > 0));
  }
  function refreshStock() {
    if (raceItem) { showItem(phones.a, raceItem); showItem(phones.b, raceItem); }
    if (appItem) showItem(phones.c, appItem);
  }

  async function newDrop() {
    const d = await shop('POST', '/demo/drop', { stock: 1 });
    if (d.status !== 201) throw new Error('drop: HTTP ' + d.status + ' ' + JSON.stringify(d.body));
    return d.body;
  }
  async function resetRace() {
    raceItem = await newDrop();
    document.getElementById('drop-info').textContent = raceItem.sku + ': 1 unit on sale';
    ['a', 'b'].forEach((k) => setResult(phones[k], 'idle', ''));
    refreshStock();
  }

  // Server flow: the shop's app sends the card on file; checkoutd authorizes and captures.
  async function buy(phone) {
    setResult(phone, 'pending', 'Paying…');
    const r = await api(phone, 'POST', '/v1/checkout', {
      items: [{ item_id: raceItem.id, quantity: 1 }], payment_method: 'pm_card_visa',
    }, key());
    if (r.status === 201) {
      setResult(phone, 'confirmed', 'Order confirmed', 'order ' + (r.body.id || r.body.order_id));
    } else if (r.status === 409 && r.body.error && r.body.error.code === 'out_of_stock') {
      setResult(phone, 'out_of_stock', 'Sold out', 'Someone bought the last unit first. No charge.');
    } else if (r.status === 402) {
      setResult(phone, 'declined', 'Card declined', r.body.error && r.body.error.decline_code);
    } else {
      setResult(phone, 'error', 'Could not buy (HTTP ' + r.status + ')',
        r.body.error ? r.body.error.code : '');
    }
    return r.status;
  }

  async function race() {
    const btn = document.getElementById('race');
    btn.disabled = true;
    try {
      // Both requests leave together: neither waits for the other's answer.
      await Promise.all([buy(phones.a), buy(phones.b)]);
    } finally {
      btn.disabled = false;
      document.getElementById('drop-info').textContent = raceItem.sku + ': sold';
      refreshStock();
    }
  }

  function step(phone, text, cls) {
    const li = document.createElement('li');
    li.textContent = text;
    if (cls) li.className = cls;
    $(phone.el, '.steps').appendChild(li);
  }

  // Mobile flow, as an app with stripe-react-native does it.
  async function payInApp() {
    const phone = phones.c;
    const btn = $(phone.el, '.pay');
    btn.disabled = true;
    $(phone.el, '.steps').textContent = '';
    setResult(phone, 'pending', 'Paying…');
    try {
      if (!appItem) appItem = await newDrop();
      // 1. checkoutd: reserve the stock, create the PaymentIntent (no payment method).
      const co = await api(phone, 'POST', '/v1/checkout',
        { items: [{ item_id: appItem.id, quantity: 1 }] }, key());
      if (co.status !== 202) {
        step(phone, 'checkout: HTTP ' + co.status, 'bad');
        setResult(phone, co.status === 409 ? 'out_of_stock' : 'error',
          co.status === 409 ? 'Sold out' : 'Checkout failed', co.body.error && co.body.error.code);
        return;
      }
      const orderId = co.body.id || co.body.order_id;
      const secret = co.body.client_secret;
      step(phone, 'checkout: 202 awaiting_payment, stock held until '
        + co.body.reservation_expires_at, 'ok');
      // 2. The provider, with the publishable key and the client_secret only.
      const pi = secret.split('_secret_')[0];
      const cardRes = await fetch(config.stripe_api_base + '/v1/payment_intents/'
        + encodeURIComponent(pi) + '/confirm', {
        method: 'POST',
        headers: { Authorization: 'Bearer ' + config.publishable_key,
          'Content-Type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ client_secret: secret,
          payment_method: document.getElementById('card').value }),
      });
      const card = await json(cardRes);
      if (!cardRes.ok) {
        const e = card.error || {};
        step(phone, 'provider: ' + (e.decline_code || e.code || cardRes.status), 'bad');
        setResult(phone, 'declined', 'Card declined', e.decline_code || e.code);
        return;
      }
      step(phone, 'provider: PaymentIntent ' + card.status, 'ok');
      // 3. checkoutd: capture and confirm (the webhook may already have done it).
      const cf = await api(phone, 'POST', '/v1/orders/' + orderId + '/confirm');
      step(phone, cf.status === 200 ? 'confirm: order ' + cf.body.status
        : 'confirm: HTTP ' + cf.status + ' (the webhook is confirming it)', cf.status === 200 ? 'ok' : '');
      // 4. The order as checkoutd has it now.
      let order = cf.body;
      for (let i = 0; i < 40 && order.status !== 'confirmed'; i++) {
        await new Promise((r) => setTimeout(r, 250));
        order = (await api(phone, 'GET', '/v1/orders/' + orderId)).body;
      }
      if (order.status === 'confirmed') {
        setResult(phone, 'confirmed', 'Order confirmed', 'order ' + orderId);
      } else {
        setResult(phone, 'error', 'Order ' + order.status, orderId);
      }
    } catch (e) {
      setResult(phone, 'error', 'Something went wrong', String(e.message || e));
    } finally {
      btn.disabled = false;
      const paid = appItem;
      appItem = null;     // the next payment gets a new unit
      if (paid) showItem(phone, paid);
    }
  }

  async function init() {
    config = (await shop('GET', '/demo/config')).body;
    for (const k of ['a', 'b', 'c']) {
      const el = document.getElementById('phone-' + k);
      const s = (await shop('POST', '/demo/session')).body;
      phones[k] = { el, token: s.token, user: s.user_id };
      $(el, '.user').textContent = s.user_id.slice(0, 8);
    }
    await resetRace();
    appItem = await newDrop();
    refreshStock();
    $(phones.a.el, '.buy').addEventListener('click', () => buy(phones.a).then(refreshStock));
    $(phones.b.el, '.buy').addEventListener('click', () => buy(phones.b).then(refreshStock));
    $(phones.c.el, '.pay').addEventListener('click', payInApp);
    document.getElementById('race').addEventListener('click', race);
    document.getElementById('new-drop').addEventListener('click', resetRace);
    document.body.dataset.ready = 'true';
  }
  init().catch((e) => {
    document.getElementById('drop-info').textContent = 'The shop could not start: ' + e.message;
  });
}());
