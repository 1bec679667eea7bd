'use strict';
// The operators' page: polls GET /v1/admin/overview every 1.5 s and redraws. The
// browser sends the Basic credentials it signed in with (same origin); the page never
// sees or stores the key. Every value is put in with textContent: nothing from the
// API is parsed as HTML.
(function () {
  const POLL_MS = 1500;

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function money(minor, cur) {
    return (minor / 100).toFixed(2) + ' ' + String(cur || '').toUpperCase();
  }
  function time(iso) {
    if (!iso) return '';
    const m = /T(\d\d:\d\d:\d\d(\.\d{1,3})?)/.exec(iso);
    return m ? m[1] : iso;
  }
  function replace(node, children) {
    while (node.firstChild) node.removeChild(node.firstChild);
    children.forEach((c) => node.appendChild(c));
  }

  function orderCard(o, skus) {
    const card = el('div', 'order');
    card.dataset.orderId = o.id;
    const top = el('div', 'top');
    const left = el('div');
    left.appendChild(el('code', null, o.id));
    left.appendChild(document.createTextNode(' '));
    left.appendChild(el('span', null, o.flow + ' flow · ' + money(o.amount, o.currency)));
    top.appendChild(left);
    top.appendChild(el('span', 'badge ' + o.status, o.status));
    card.appendChild(top);
    const lines = (o.lines || []).map((l) => (skus[l.item_id] || l.item_id) + ' × ' + l.quantity);
    let extra = o.failure_code ? ' · ' + o.failure_code : '';
    if (o.decline_code) extra += ' (' + o.decline_code + ')';
    card.appendChild(el('div', 'lines', lines.join(', ') + extra));
    const tl = el('ol', 'timeline');
    (o.history || []).forEach((h) => {
      const li = el('li');
      li.appendChild(el('span', 'to', h.to));
      if (h.reason) li.appendChild(el('span', 'why', ' · ' + h.reason));
      li.appendChild(el('span', 'at', time(h.at)));
      tl.appendChild(li);
    });
    card.appendChild(tl);
    return card;
  }

  function render(d) {
    const skus = {};
    (d.items || []).forEach((i) => { skus[i.id] = i.sku; });

    const counts = Object.keys(d.live_orders || {}).sort()
      .map((s) => el('span', null, s + ' ' + d.live_orders[s]));
    replace(document.getElementById('counts'), counts);

    const orders = document.getElementById('orders');
    replace(orders, d.orders.length ? d.orders.map((o) => orderCard(o, skus))
      : [el('p', 'empty', 'No orders yet.')]);

    const tbody = document.querySelector('#items tbody');
    replace(tbody, d.items.map((i) => {
      const tr = el('tr');
      tr.dataset.itemId = i.id;
      tr.appendChild(el('td', null, i.sku));
      tr.appendChild(el('td', null, i.name));
      tr.appendChild(el('td', 'num', money(i.price, i.currency)));
      tr.appendChild(el('td', 'num stock' + (i.stock_available === 0 ? ' zero' : ''),
        i.stock_available));
      return tr;
    }));

    replace(document.getElementById('payment-events'), d.payment_events.length
      ? d.payment_events.map((e) => {
        const li = el('li');
        li.appendChild(el('span', 't', time(e.created_at)));
        li.appendChild(el('span', null, e.type));
        li.appendChild(el('span', 't', e.outcome));
        return li;
      }) : [el('li', 'empty', 'None recorded yet.')]);

    replace(document.getElementById('restock-events'), d.restock_events.length
      ? d.restock_events.map((e) => {
        const li = el('li');
        li.appendChild(el('span', 't', time(e.created_at)));
        li.appendChild(el('span', null, (skus[e.item_id] || e.item_id) + ' +' + e.quantity));
        if (e.became_available) li.appendChild(el('span', 't', 'back in stock'));
        return li;
      }) : [el('li', 'empty', 'None yet.')]);

    document.getElementById('outbox-pending').textContent = d.outbox.pending + ' pending';
    replace(document.getElementById('outbox'), d.outbox.recent.length
      ? d.outbox.recent.map((n) => {
        const li = el('li');
        li.appendChild(el('span', 't', time(n.created_at)));
        li.appendChild(el('span', null, 'back in stock: ' + (skus[n.item_id] || n.item_id)));
        li.appendChild(el('span', n.status === 'dead' ? 'dead' : 't',
          n.status + ' after ' + n.attempts + ' attempt(s)'));
        return li;
      }) : [el('li', 'empty', 'No notifications yet.')]);
  }

  async function poll() {
    const live = document.getElementById('live');
    try {
      const res = await fetch('/v1/admin/overview', { credentials: 'same-origin', cache: 'no-store' });
      if (!res.ok) throw new Error('HTTP ' + res.status);
      const d = await res.json();
      render(d);
      live.className = 'live ok';
      live.textContent = 'live · updated ' + time(d.generated_at);
    } catch (e) {
      live.className = 'live down';
      live.textContent = 'cannot reach the server (' + e.message + '), retrying';
    }
    setTimeout(poll, POLL_MS);
  }
  poll();
}());
