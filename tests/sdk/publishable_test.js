'use strict';
// What a shopper's app does with mock-stripe (bin/mock-stripe): the official stripe
// Node SDK constructed with the publishable key, holding a PaymentIntent's
// client_secret, as Stripe.js and stripe-react-native hold them. It may retrieve and
// confirm that intent and nothing else; a wrong client_secret is refused as Stripe
// refuses it; a browser's CORS preflight and answers carry Stripe's CORS headers.
// Run by tests/sdk/run.sh, which starts the mock with MOCK_STRIPE_PUBLISHABLE_KEY and
// passes it as PUBLISHABLE_KEY.
const test = require('node:test');
const assert = require('node:assert/strict');
const { Agent } = require('node:http');
const Stripe = require('stripe');

const MOCK = new URL(process.env.MOCK_STRIPE_URL || 'http://127.0.0.1:12111');
const PK = process.env.PUBLISHABLE_KEY;
const agent = new Agent({ keepAlive: true });

function client(key) {
  return new Stripe(key, {
    host: MOCK.hostname,
    port: Number(MOCK.port),
    protocol: 'http',
    maxNetworkRetries: 0,
    httpAgent: agent,
  });
}
const backend = client('sk_test_backend');
const app = client(PK);

test.after(() => agent.destroy());

// What checkoutd does for the mobile flow: an intent with manual capture, no method yet.
function mobileIntent() {
  return backend.paymentIntents.create({
    amount: 1999, currency: 'usd', capture_method: 'manual',
    payment_method_types: ['card'], metadata: { order_id: 'order-pk-test' },
  });
}

async function refused(promise) {
  try {
    await promise;
  } catch (e) {
    return e;
  }
  assert.fail('the call was not refused');
}

test('the app retrieves and confirms with the publishable key and the client_secret', async () => {
  assert.ok(PK && PK.startsWith('pk_test_'), 'run.sh passes the publishable key');
  const pi = await mobileIntent();
  const seen = await app.paymentIntents.retrieve(pi.id, { client_secret: pi.client_secret });
  assert.equal(seen.id, pi.id);
  assert.equal(seen.status, 'requires_payment_method');
  const done = await app.paymentIntents.confirm(pi.id, {
    client_secret: pi.client_secret, payment_method: 'pm_card_visa',
  });
  assert.equal(done.status, 'requires_capture');
  assert.equal(done.amount_capturable, 1999);
  // The backend (secret key) captures, as checkoutd does on the webhook.
  const captured = await backend.paymentIntents.capture(pi.id);
  assert.equal(captured.status, 'succeeded');
});

test('a declined card with the publishable key is the card error Stripe.js shows', async () => {
  const pi = await mobileIntent();
  const e = await refused(app.paymentIntents.confirm(pi.id, {
    client_secret: pi.client_secret, payment_method: 'pm_card_visa_chargeDeclinedInsufficientFunds',
  }));
  assert.equal(e.type, 'StripeCardError');
  assert.equal(e.statusCode, 402);
  assert.equal(e.decline_code, 'insufficient_funds');
});

test('a wrong client_secret is 400 payment_intent_invalid_parameter and changes nothing', async () => {
  const pi = await mobileIntent();
  const other = await mobileIntent();
  for (const call of [
    () => app.paymentIntents.retrieve(pi.id, { client_secret: other.client_secret }),
    () => app.paymentIntents.confirm(pi.id, {
      client_secret: `${pi.client_secret}x`, payment_method: 'pm_card_visa',
    }),
    () => app.paymentIntents.confirm(pi.id, {
      client_secret: other.client_secret, payment_method: 'pm_card_visa',
    }),
  ]) {
    const e = await refused(call());
    assert.equal(e.type, 'StripeInvalidRequestError');
    assert.equal(e.statusCode, 400);
    assert.equal(e.code, 'payment_intent_invalid_parameter');
    assert.equal(e.param, 'client_secret');
    assert.match(e.message, /client_secret provided does not match/);
  }
  const after = await backend.paymentIntents.retrieve(pi.id);
  assert.equal(after.status, 'requires_payment_method', 'the refused confirm applied nothing');
  assert.equal(after.payment_method, null);
});

test('the publishable key is refused everywhere else with Stripe\'s 401', async () => {
  const pi = await mobileIntent();
  const calls = [
    () => app.paymentIntents.create({ amount: 100, currency: 'usd' }),
    () => app.paymentIntents.list({ limit: 1 }),
    () => app.paymentIntents.update(pi.id, { description: 'x' }),
    () => app.paymentIntents.capture(pi.id),
    () => app.paymentIntents.cancel(pi.id),
    // the client_secret opens retrieve and confirm only
    () => app.paymentIntents.cancel(pi.id, { client_secret: pi.client_secret }),
    () => app.paymentIntents.update(pi.id, { client_secret: pi.client_secret }),
    () => app.refunds.create({ payment_intent: pi.id }),
    () => app.refunds.list(),
    // retrieve and confirm without the client_secret are secret-key calls
    () => app.paymentIntents.retrieve(pi.id),
    () => app.paymentIntents.confirm(pi.id, { payment_method: 'pm_card_visa' }),
  ];
  for (const call of calls) {
    const e = await refused(call());
    assert.equal(e.type, 'StripeAuthenticationError');
    assert.equal(e.statusCode, 401);
    assert.equal(e.raw.type, 'invalid_request_error');
    assert.match(e.message, /cannot be made with a publishable API key/);
  }
  const after = await backend.paymentIntents.retrieve(pi.id);
  assert.equal(after.status, 'requires_payment_method');
  assert.equal(after.description, null);
});

test('a publishable key other than the configured one is an invalid API key', async () => {
  const pi = await mobileIntent();
  const e = await refused(client('pk_test_not_this_one_1234')
    .paymentIntents.retrieve(pi.id, { client_secret: pi.client_secret }));
  assert.equal(e.type, 'StripeAuthenticationError');
  assert.match(e.message, /^Invalid API Key provided: pk_test_\*+1234$/);
});

test('CORS: the preflight and the answers let a page call retrieve and confirm', async () => {
  const pi = await mobileIntent();
  const url = `${MOCK.origin}/v1/payment_intents/${pi.id}/confirm`;
  const pre = await fetch(url, {
    method: 'OPTIONS',
    headers: {
      Origin: 'http://shop.example',
      'Access-Control-Request-Method': 'POST',
      'Access-Control-Request-Headers': 'authorization,content-type',
    },
  });
  assert.equal(pre.status, 200);
  assert.equal(pre.headers.get('access-control-allow-origin'), '*');
  assert.match(pre.headers.get('access-control-allow-methods'), /POST/);
  assert.match(pre.headers.get('access-control-allow-headers'), /Authorization/);
  // Stripe.js sends the key as the form parameter "key" (no preflight needed).
  const res = await fetch(url, {
    method: 'POST',
    headers: { Origin: 'http://shop.example', 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ key: PK, client_secret: pi.client_secret, payment_method: 'pm_card_visa' }),
  });
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('access-control-allow-origin'), '*');
  assert.equal((await res.json()).status, 'requires_capture');
  const bad = await fetch(`${MOCK.origin}/v1/payment_intents`, { headers: { Origin: 'http://shop.example' } });
  assert.equal(bad.status, 401, 'no key at all');
  assert.equal(bad.headers.get('access-control-allow-origin'), '*', 'errors carry CORS too');
});
