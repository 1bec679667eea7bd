'use strict';
// bin/mock-notify: the back-in-stock sink. Run by tests/sdk/run.sh, which starts it
// with --fail-first 1 and passes MOCK_NOTIFY_URL and NOTIFY_SECRET.
const test = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');

const URL_ = process.env.MOCK_NOTIFY_URL;
const SECRET = process.env.NOTIFY_SECRET;

// The t=,v1= scheme of src/co_sig.h: HMAC-SHA256(secret, "<t>.<body>").
function sign(body, secret = SECRET, t = Math.floor(Date.now() / 1000)) {
  const mac = crypto.createHmac('sha256', secret).update(`${t}.${body}`).digest('hex');
  return `t=${t},v1=${mac}`;
}

async function deliver(body, signature) {
  const headers = { 'content-type': 'application/json' };
  if (signature !== undefined) headers['notify-signature'] = signature;
  const res = await fetch(`${URL_}/notify`, { method: 'POST', headers, body });
  return res.status;
}

async function deliveries() {
  return (await fetch(`${URL_}/_mock/deliveries`)).json();
}

test('fails the first delivery, then records signed and forged ones', async () => {
  const body = JSON.stringify({ item_id: 'item-1', user_id: 'user-1' });
  assert.equal(await deliver(body, sign(body)), 500, '--fail-first 1');
  assert.equal(await deliver(body, sign(body)), 200);
  assert.equal(await deliver(body, sign(body, 'not-the-secret')), 401);
  assert.equal(await deliver(body), 401, 'no signature');
  assert.equal(await deliver(body, sign(body, SECRET, Math.floor(Date.now() / 1000) - 3600)), 401, 'stale');
  assert.equal(await deliver('not json', sign('not json')), 400);

  const d = await deliveries();
  assert.equal(d.count, 6);
  assert.deepEqual(d.data.map((x) => [x.status, x.verified]), [
    [500, true], [200, true], [401, false], [401, false], [401, false], [400, true],
  ]);
  assert.deepEqual(d.data[1].body, { item_id: 'item-1', user_id: 'user-1' });
  assert.equal(d.data[2].signature_error, 'mismatch');
  assert.equal(d.data[4].signature_error, 'stale');
});

test('/_mock/fail arms more failures; DELETE clears', async () => {
  const res = await fetch(`${URL_}/_mock/fail`, { method: 'POST', body: JSON.stringify({ count: 2 }) });
  assert.equal(res.status, 200);
  const body = JSON.stringify({ item_id: 'item-2', user_id: 'user-2' });
  assert.deepEqual(
    [await deliver(body, sign(body)), await deliver(body, sign(body)), await deliver(body, sign(body))],
    [500, 500, 200],
  );
  assert.equal((await fetch(`${URL_}/_mock/deliveries`, { method: 'DELETE' })).status, 200);
  assert.equal((await deliveries()).count, 0);
});
