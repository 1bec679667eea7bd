'use strict';
// bin/mock-stripe as seen by the official stripe Node SDK. If the SDK and the mock
// disagree, the mock is wrong. Run by tests/sdk/run.sh, which starts the mock and the
// webhook receiver and passes MOCK_STRIPE_URL, RECEIVER_URL and WEBHOOK_SECRET.
const test = require('node:test');
const assert = require('node:assert/strict');
const { Agent } = require('node:http');
const Stripe = require('stripe');

const MOCK = new URL(process.env.MOCK_STRIPE_URL || 'http://127.0.0.1:12111');
const RECEIVER = process.env.RECEIVER_URL;
const SECRET = process.env.WEBHOOK_SECRET;

// One agent for every client, destroyed at the end: the SDK does not drain the body of
// a response it retries (500, 409), so that socket stays busy, and referenced, until the
// server times it out; without this the test process would linger that long.
const agent = new Agent({ keepAlive: true });

function client(key = 'sk_test_123', extra = {}) {
  return new Stripe(key, {
    host: MOCK.hostname,
    port: Number(MOCK.port),
    protocol: 'http',
    maxNetworkRetries: 2,
    httpAgent: agent,
    ...extra,
  });
}
const stripe = client();

async function http(method, url, body) {
  const res = await fetch(url, {
    method,
    headers: body ? { 'content-type': 'application/json' } : {},
    body: body ? JSON.stringify(body) : undefined,
  });
  const json = await res.json();
  if (!res.ok) throw new Error(`${method} ${url}: ${res.status} ${JSON.stringify(json)}`);
  return json;
}
const mock = (method, path, body) => http(method, MOCK.origin + path, body);

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Polls until fn returns a truthy value (webhooks arrive asynchronously).
async function eventually(fn, what, ms = 15000) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

// Every delivery so far, each verified with the SDK exactly as a real endpoint would.
async function receivedEvents() {
  const { events } = await http('GET', `${RECEIVER}/_events`);
  return events.map((e) => stripe.webhooks.constructEvent(e.body, e.signature, SECRET));
}

const authorize = (extra = {}) =>
  stripe.paymentIntents.create({
    amount: 1000,
    currency: 'usd',
    payment_method: 'pm_card_visa',
    payment_method_types: ['card'],
    confirm: true,
    capture_method: 'manual',
    ...extra,
  });

test.after(async () => {
  await mock('DELETE', '/_mock/faults');
  agent.destroy();
});

test('authorize with manual capture, then capture', async () => {
  const pi = await authorize({ metadata: { order_id: 'ord_1' } });
  assert.match(pi.id, /^pi_[A-Za-z0-9]{24}$/);
  assert.equal(pi.object, 'payment_intent');
  assert.equal(pi.status, 'requires_capture');
  assert.equal(pi.amount_capturable, 1000);
  assert.equal(pi.amount_received, 0);
  assert.equal(pi.capture_method, 'manual');
  assert.equal(pi.metadata.order_id, 'ord_1');
  assert.match(pi.client_secret, new RegExp(`^${pi.id}_secret_[A-Za-z0-9]+$`));
  assert.match(pi.latest_charge, /^ch_/);
  assert.equal(pi.livemode, false);
  assert.deepEqual(pi.payment_method_types, ['card']);
  assert.match(pi.lastResponse.requestId, /^req_/);

  const captured = await stripe.paymentIntents.capture(pi.id);
  assert.equal(captured.status, 'succeeded');
  assert.equal(captured.amount_received, 1000);
  assert.equal(captured.amount_capturable, 0);

  const charge = await stripe.charges.retrieve(captured.latest_charge);
  assert.equal(charge.captured, true);
  assert.equal(charge.amount_captured, 1000);
  assert.equal(charge.payment_intent, pi.id);
});

test('partial capture releases the rest', async () => {
  const pi = await authorize();
  const captured = await stripe.paymentIntents.capture(pi.id, { amount_to_capture: 600 });
  assert.equal(captured.amount_received, 600);
  const charge = await stripe.charges.retrieve(captured.latest_charge);
  assert.equal(charge.amount_refunded, 400);
  await assert.rejects(stripe.paymentIntents.capture(pi.id), { code: 'payment_intent_unexpected_state' });
});

test('capture more than authorized is refused', async () => {
  const pi = await authorize();
  await assert.rejects(stripe.paymentIntents.capture(pi.id, { amount_to_capture: 1001 }), {
    type: 'StripeInvalidRequestError',
    code: 'amount_too_large',
  });
  assert.equal((await stripe.paymentIntents.retrieve(pi.id)).status, 'requires_capture');
});

test('automatic capture succeeds at once', async () => {
  const pi = await stripe.paymentIntents.create({
    amount: 2500, currency: 'EUR', payment_method: 'pm_card_mastercard', confirm: true,
  });
  assert.equal(pi.status, 'succeeded');
  assert.equal(pi.currency, 'eur');
  assert.equal(pi.capture_method, 'automatic');
  assert.equal(pi.amount_received, 2500);
  assert.deepEqual(pi.payment_method_types, ['card']);
});

test('create, update, confirm later, cancel', async () => {
  const pi = await stripe.paymentIntents.create({ amount: 700, currency: 'usd', capture_method: 'manual' });
  assert.equal(pi.status, 'requires_payment_method');
  assert.equal(pi.payment_method, null);
  assert.equal(pi.latest_charge, null);

  const upd = await stripe.paymentIntents.update(pi.id, { metadata: { a: '1', b: '2' } });
  assert.deepEqual(upd.metadata, { a: '1', b: '2' });
  const upd2 = await stripe.paymentIntents.update(pi.id, { metadata: { a: '' } });
  assert.deepEqual(upd2.metadata, { b: '2' });

  const confirmed = await stripe.paymentIntents.confirm(pi.id, { payment_method: 'pm_card_visa' });
  assert.equal(confirmed.status, 'requires_capture');

  const canceled = await stripe.paymentIntents.cancel(pi.id, { cancellation_reason: 'abandoned' });
  assert.equal(canceled.status, 'canceled');
  assert.equal(canceled.cancellation_reason, 'abandoned');
  assert.equal(typeof canceled.canceled_at, 'number');
  assert.equal(canceled.amount_capturable, 0);
  const charge = await stripe.charges.retrieve(canceled.latest_charge);
  assert.equal(charge.refunded, true, 'voiding an authorization refunds its charge');

  await assert.rejects(stripe.paymentIntents.cancel(pi.id), (err) => {
    assert.ok(err instanceof Stripe.errors.StripeInvalidRequestError);
    assert.equal(err.code, 'payment_intent_unexpected_state');
    assert.equal(err.raw.payment_intent.status, 'canceled');
    return true;
  });
  await assert.rejects(stripe.paymentIntents.confirm(pi.id, { payment_method: 'pm_card_visa' }), {
    code: 'payment_intent_unexpected_state',
  });
});

test('a declined card throws StripeCardError with the PaymentIntent', async () => {
  let id;
  await assert.rejects(
    authorize({ payment_method: 'pm_card_visa_chargeDeclinedInsufficientFunds' }),
    (err) => {
      assert.ok(err instanceof Stripe.errors.StripeCardError, `got ${err.type}`);
      assert.equal(err.statusCode, 402);
      assert.equal(err.code, 'card_declined');
      assert.equal(err.decline_code, 'insufficient_funds');
      assert.match(err.raw.payment_intent.id, /^pi_/);
      assert.equal(err.raw.payment_intent.status, 'requires_payment_method');
      assert.equal(err.raw.payment_intent.last_payment_error.decline_code, 'insufficient_funds');
      assert.match(err.raw.charge, /^ch_/);
      assert.equal(err.headers['stripe-should-retry'], 'false');
      id = err.raw.payment_intent.id;
      return true;
    },
  );
  const pi = await stripe.paymentIntents.retrieve(id);
  assert.equal(pi.status, 'requires_payment_method');
  assert.equal(pi.payment_method, null, 'Stripe detaches a declined payment method');
  assert.equal(pi.last_payment_error.payment_method.id, 'pm_card_visa_chargeDeclinedInsufficientFunds');

  // The shopper retries with a good card on the same PaymentIntent.
  const ok = await stripe.paymentIntents.confirm(id, { payment_method: 'pm_card_visa' });
  assert.equal(ok.status, 'requires_capture');
  assert.equal(ok.last_payment_error, null);
});

test('every test card declines the way Stripe does', async () => {
  const cases = [
    ['pm_card_visa_chargeDeclined', 'card_declined', 'generic_decline'],
    ['pm_card_chargeDeclined', 'card_declined', 'generic_decline'],
    ['pm_card_chargeDeclinedInsufficientFunds', 'card_declined', 'insufficient_funds'],
    ['pm_card_chargeDeclinedExpiredCard', 'expired_card', 'expired_card'],
    ['pm_card_chargeDeclinedIncorrectCvc', 'incorrect_cvc', 'incorrect_cvc'],
    ['pm_card_chargeDeclinedProcessingError', 'processing_error', 'processing_error'],
    ['pm_card_chargeDeclinedFraudulent', 'card_declined', 'fraudulent'],
    ['pm_card_visa_chargeDeclinedFraudulent', 'card_declined', 'fraudulent'],
    ['pm_card_chargeDeclinedLostCard', 'card_declined', 'lost_card'],
    ['pm_card_chargeDeclinedStolenCard', 'card_declined', 'stolen_card'],
  ];
  for (const [pm, code, decline] of cases) {
    await assert.rejects(authorize({ payment_method: pm }), (err) => {
      assert.ok(err instanceof Stripe.errors.StripeCardError, pm);
      assert.equal(err.code, code, pm);
      assert.equal(err.decline_code, decline, pm);
      return true;
    });
  }
  await assert.rejects(authorize({ payment_method: 'pm_nonexistent' }), {
    type: 'StripeInvalidRequestError', code: 'resource_missing', param: 'payment_method',
  });
});

test('3-D Secure: requires_action, then the test-only authenticate endpoint', async () => {
  const pi = await authorize({ payment_method: 'pm_card_authenticationRequired' });
  assert.equal(pi.status, 'requires_action');
  assert.equal(pi.next_action.type, 'use_stripe_sdk');
  const done = await mock('POST', `/_mock/payment_intents/${pi.id}/authenticate`, {});
  assert.equal(done.status, 'requires_capture');
  assert.equal((await stripe.paymentIntents.capture(pi.id)).status, 'succeeded');

  const pi2 = await authorize({ payment_method: 'pm_card_threeDSecureRequired' });
  const failed = await mock('POST', `/_mock/payment_intents/${pi2.id}/authenticate`, { outcome: 'fail' });
  assert.equal(failed.status, 'requires_payment_method');
  assert.equal(failed.last_payment_error.code, 'payment_intent_authentication_failure');

  // Off-session, nobody can authenticate: Stripe declines with authentication_required.
  await assert.rejects(authorize({ payment_method: 'pm_card_authenticationRequired', off_session: true }), {
    type: 'StripeCardError', code: 'authentication_required',
  });
});

test('retrieve and list with limit / starting_after', async () => {
  const made = [];
  for (let i = 0; i < 5; i++) made.push((await authorize({ amount: 100 + i })).id);
  const got = await stripe.paymentIntents.retrieve(made[2]);
  assert.equal(got.id, made[2]);
  assert.equal(got.amount, 102);

  const page1 = await stripe.paymentIntents.list({ limit: 2 });
  assert.equal(page1.object, 'list');
  assert.equal(page1.url, '/v1/payment_intents');
  assert.equal(page1.has_more, true);
  assert.deepEqual(page1.data.map((p) => p.id), [made[4], made[3]], 'newest first');
  const page2 = await stripe.paymentIntents.list({ limit: 2, starting_after: page1.data[1].id });
  assert.deepEqual(page2.data.map((p) => p.id), [made[2], made[1]]);
  const back = await stripe.paymentIntents.list({ limit: 2, ending_before: made[2] });
  assert.deepEqual(back.data.map((p) => p.id), [made[4], made[3]]);

  const all = await stripe.paymentIntents.list({ limit: 3 }).autoPagingToArray({ limit: 10000 });
  const ids = all.map((p) => p.id);
  assert.equal(new Set(ids).size, ids.length, 'no duplicates across pages');
  const pos = made.map((id) => ids.indexOf(id));
  assert.ok(pos.every((p) => p >= 0), 'every PaymentIntent is listed');
  assert.deepEqual([...pos].sort((a, b) => b - a), pos, 'in newest-first order');

  await assert.rejects(stripe.paymentIntents.list({ limit: 101 }), { code: 'parameter_invalid_integer' });
});

test('list filtered by created (gte, gt, lte, lt, exact), paged', async () => {
  const made = [];
  for (let i = 0; i < 3; i++) made.push(await authorize({ amount: 200 + i }));
  const first = made[0].created;
  const last = made[2].created;
  const ids = (list) => list.map((p) => p.id);

  const since = await stripe.paymentIntents.list({ created: { gte: first }, limit: 2 })
    .autoPagingToArray({ limit: 10000 });
  for (const p of made) assert.ok(ids(since).includes(p.id), 'created[gte] keeps what is newer');
  assert.ok(since.every((p) => p.created >= first), 'created[gte] drops what is older');

  const page = await stripe.paymentIntents.list({ created: { gte: first }, limit: 1 });
  assert.equal(page.data.length, 1);
  assert.equal(page.has_more, true, 'has_more counts only matching intents');

  const none = await stripe.paymentIntents.list({ created: { gt: last } });
  assert.ok(none.data.every((p) => p.created > last));
  for (const p of made) assert.ok(!ids(none.data).includes(p.id), 'created[gt] is strict');
  const upto = await stripe.paymentIntents.list({ created: { lte: last, gte: first }, limit: 100 });
  for (const p of made) assert.ok(ids(upto.data).includes(p.id), 'created[lte] is inclusive');
  const before = await stripe.paymentIntents.list({ created: { lt: first }, limit: 100 });
  assert.ok(before.data.every((p) => p.created < first), 'created[lt] is strict');
  const exact = await stripe.paymentIntents.list({ created: last, limit: 100 });
  assert.ok(exact.data.length > 0 && exact.data.every((p) => p.created === last), 'created=N');
  const future = await stripe.paymentIntents.list({ created: { gte: last + 3600 } });
  assert.deepEqual(future.data, []);
  assert.equal(future.has_more, false);

  await assert.rejects(stripe.paymentIntents.list({ created: { gte: 'soon' } }),
    { code: 'parameter_invalid_integer' });
  await assert.rejects(stripe.paymentIntents.list({ created: { after: 1 } }),
    { code: 'parameter_unknown' });
});

test('refunds: partial, the rest, then charge_already_refunded', async () => {
  const pi = await stripe.paymentIntents.create({
    amount: 1000, currency: 'usd', payment_method: 'pm_card_visa', confirm: true,
    metadata: { order_id: 'ord_refund' },
  });
  assert.equal(pi.status, 'succeeded');
  const r1 = await stripe.refunds.create({ payment_intent: pi.id, amount: 300, reason: 'requested_by_customer' });
  assert.match(r1.id, /^re_/);
  assert.equal(r1.object, 'refund');
  assert.equal(r1.amount, 300);
  assert.equal(r1.status, 'succeeded');
  assert.equal(r1.payment_intent, pi.id);
  assert.equal(r1.charge, pi.latest_charge);
  assert.equal(r1.currency, 'usd');

  await assert.rejects(stripe.refunds.create({ payment_intent: pi.id, amount: 800 }), {
    type: 'StripeInvalidRequestError', code: 'amount_too_large',
  });
  const r2 = await stripe.refunds.create({ charge: pi.latest_charge });
  assert.equal(r2.amount, 700, 'no amount refunds what remains');
  await assert.rejects(stripe.refunds.create({ payment_intent: pi.id }), (err) => {
    assert.ok(err instanceof Stripe.errors.StripeInvalidRequestError);
    assert.equal(err.code, 'charge_already_refunded');
    return true;
  });

  const charge = await stripe.charges.retrieve(pi.latest_charge);
  assert.equal(charge.amount_refunded, 1000);
  assert.equal(charge.refunded, true);
  assert.equal((await stripe.refunds.retrieve(r1.id)).amount, 300);
  const list = await stripe.refunds.list({ payment_intent: pi.id });
  assert.deepEqual(list.data.map((r) => r.id), [r2.id, r1.id]);

  const held = await authorize();
  await assert.rejects(stripe.refunds.create({ payment_intent: held.id }), {
    code: 'payment_intent_unexpected_state',
  });
  await assert.rejects(stripe.refunds.create({ payment_intent: 'pi_doesnotexist' }), {
    code: 'resource_missing', statusCode: 404,
  });
});

test('idempotency: replay, reuse with other parameters, in flight', async () => {
  const key = `idem-${Date.now()}-${Math.random()}`;
  const p1 = await stripe.paymentIntents.create({ amount: 4200, currency: 'usd' }, { idempotencyKey: key });
  const p2 = await stripe.paymentIntents.create({ amount: 4200, currency: 'usd' }, { idempotencyKey: key });
  assert.equal(p2.id, p1.id);
  assert.equal(p2.lastResponse.headers['idempotent-replayed'], 'true');
  assert.equal(p1.lastResponse.headers['idempotent-replayed'], undefined);

  await assert.rejects(
    stripe.paymentIntents.create({ amount: 4300, currency: 'usd' }, { idempotencyKey: key }),
    (err) => {
      assert.ok(err instanceof Stripe.errors.StripeIdempotencyError, `got ${err.type}`);
      assert.equal(err.statusCode, 400);
      return true;
    },
  );

  // A slow first request (delay fault): a concurrent one with the same key gets 409
  // idempotency_key_in_use; the SDK retries 409s, and gets the replay.
  await mock('POST', '/_mock/faults', { match: 'POST /v1/payment_intents', action: 'delay', delay_ms: 1200, count: 1 });
  const slowKey = `${key}-slow`;
  const noRetry = client('sk_test_123', { maxNetworkRetries: 0 });
  const first = stripe.paymentIntents.create({ amount: 10, currency: 'usd' }, { idempotencyKey: slowKey });
  await sleep(300);
  await assert.rejects(
    noRetry.paymentIntents.create({ amount: 10, currency: 'usd' }, { idempotencyKey: slowKey }),
    (err) => {
      assert.ok(err instanceof Stripe.errors.StripeIdempotencyError, `got ${err.type}`);
      assert.equal(err.statusCode, 409);
      assert.equal(err.code, 'idempotency_key_in_use');
      assert.equal(err.headers['stripe-should-retry'], 'true');
      return true;
    },
  );
  const second = await stripe.paymentIntents.create({ amount: 10, currency: 'usd' }, { idempotencyKey: slowKey });
  assert.equal(second.id, (await first).id);
});

test('errors: wrong state, 404, 401, bad parameters', async () => {
  const pi = await stripe.paymentIntents.create({ amount: 500, currency: 'usd' });
  await assert.rejects(stripe.paymentIntents.capture(pi.id), (err) => {
    assert.ok(err instanceof Stripe.errors.StripeInvalidRequestError);
    assert.equal(err.statusCode, 400);
    assert.equal(err.code, 'payment_intent_unexpected_state');
    assert.equal(err.raw.payment_intent.id, pi.id);
    return true;
  });
  await assert.rejects(stripe.paymentIntents.retrieve('pi_doesnotexist'), (err) => {
    assert.ok(err instanceof Stripe.errors.StripeInvalidRequestError);
    assert.equal(err.statusCode, 404);
    assert.equal(err.code, 'resource_missing');
    assert.equal(err.param, 'intent');
    return true;
  });
  await assert.rejects(client('sk_live_not_a_test_key').paymentIntents.list(), (err) => {
    assert.ok(err instanceof Stripe.errors.StripeAuthenticationError, `got ${err.type}`);
    assert.equal(err.statusCode, 401);
    assert.ok(!err.message.includes('sk_live_not_a_test_key'), 'the key is masked');
    return true;
  });
  await assert.rejects(stripe.paymentIntents.create({ currency: 'usd' }), {
    code: 'parameter_missing', param: 'amount',
  });
  await assert.rejects(stripe.paymentIntents.create({ amount: -5, currency: 'usd' }), {
    code: 'parameter_invalid_integer',
  });
  await assert.rejects(stripe.paymentIntents.create({ amount: '99999999999999999999999', currency: 'usd' }), {
    code: 'parameter_invalid_integer',
  });
  await assert.rejects(stripe.paymentIntents.create({ amount: 5, currency: 'usd', bogus: 1 }), {
    code: 'parameter_unknown',
  });
  await assert.rejects(
    stripe.paymentIntents.create({ amount: 5, currency: 'usd', metadata: { ['k'.repeat(41)]: 'v' } }),
    { type: 'StripeInvalidRequestError' },
  );
  await assert.rejects(stripe.paymentIntents.create({ amount: 5, currency: 'usd', capture_method: 'later' }), {
    param: 'capture_method',
  });
  await assert.rejects(stripe.paymentIntents.update('pi_doesnotexist', { metadata: { a: 'b' } }), {
    statusCode: 404,
  });
});

test('fault status_500 on create: the SDK retries and succeeds', async () => {
  await mock('POST', '/_mock/faults', { match: 'POST /v1/payment_intents', action: 'status_500', count: 1 });
  const before = await mock('GET', '/_mock/stats');
  const pi = await stripe.paymentIntents.create({ amount: 900, currency: 'usd' });
  assert.equal(pi.status, 'requires_payment_method');
  const after = await mock('GET', '/_mock/stats');
  assert.equal(after.requests - before.requests, 2, 'one 500, then the retry');
  assert.equal(after.payment_intents - before.payment_intents, 1, 'the 500 created nothing');
  assert.deepEqual((await mock('GET', '/_mock/faults')).data, [], 'the fault was used up');
});

test('fault drop_response on capture: retry with the same key captures once', async () => {
  const pi = await authorize({ amount: 1234 });
  const before = await mock('GET', '/_mock/stats');
  await mock('POST', '/_mock/faults', { match: 'POST /v1/payment_intents/*/capture', action: 'drop_response', count: 1 });
  const statuses = [];
  const c = client();
  c.on('response', (ev) => statuses.push(ev.status));
  const captured = await c.paymentIntents.capture(pi.id, {}, { idempotencyKey: `capture-${pi.id}` });
  assert.equal(captured.status, 'succeeded');
  assert.equal(captured.amount_received, 1234);
  assert.equal(captured.lastResponse.headers['idempotent-replayed'], 'true', 'the answer is the saved one');
  assert.deepEqual(statuses, [200], 'the first attempt never got an answer');
  const after = await mock('GET', '/_mock/stats');
  assert.equal(after.captured - before.captured, 1, 'exactly one capture');

  const hooks = await eventually(async () => {
    const w = await mock('GET', `/_mock/webhooks?object_id=${pi.id}&type=payment_intent.succeeded`);
    return w.data.length > 0 && w;
  }, 'the succeeded event');
  assert.equal(hooks.data.length, 1, 'one succeeded event for one capture');
});

test('fault hang: the SDK times out and retries', async () => {
  const pi = await authorize();
  await mock('POST', '/_mock/faults', { match: 'GET /v1/payment_intents/*', action: 'hang', delay_ms: 3000, count: 1 });
  const c = client('sk_test_123', { timeout: 500, maxNetworkRetries: 1 });
  const got = await c.paymentIntents.retrieve(pi.id);
  assert.equal(got.id, pi.id);
});

test('webhooks: signed events the SDK verifies, for every state change', async () => {
  const held = await authorize();
  await stripe.paymentIntents.capture(held.id);
  const voided = await authorize();
  await stripe.paymentIntents.cancel(voided.id);
  let declined;
  await assert.rejects(authorize({ payment_method: 'pm_card_chargeDeclined' }), (err) => {
    declined = err.raw.payment_intent.id;
    return true;
  });
  const paid = await stripe.paymentIntents.create({
    amount: 800, currency: 'usd', payment_method: 'pm_card_visa', confirm: true,
    metadata: { order_id: 'ord_hook' },
  });
  await stripe.refunds.create({ payment_intent: paid.id, amount: 800 });

  const want = [
    ['payment_intent.amount_capturable_updated', held.id],
    ['payment_intent.succeeded', held.id],
    ['payment_intent.canceled', voided.id],
    ['payment_intent.payment_failed', declined],
    ['payment_intent.succeeded', paid.id],
    ['charge.refunded', paid.latest_charge],
  ];
  const events = await eventually(async () => {
    const evs = await receivedEvents();   // constructEvent throws on a bad signature
    const ok = want.every(([type, id]) => evs.some((e) => e.type === type && e.data.object.id === id));
    return ok && evs;
  }, 'all webhook events');

  for (const e of events) {
    assert.match(e.id, /^evt_/);
    assert.equal(e.object, 'event');
    assert.equal(e.livemode, false);
    assert.equal(typeof e.created, 'number');
    assert.ok(e.api_version);
  }
  const capturable = events.find((e) => e.type === 'payment_intent.amount_capturable_updated' && e.data.object.id === held.id);
  assert.equal(capturable.data.object.status, 'requires_capture');
  assert.equal(capturable.data.object.amount_capturable, 1000);
  const failed = events.find((e) => e.type === 'payment_intent.payment_failed' && e.data.object.id === declined);
  assert.equal(failed.data.object.last_payment_error.decline_code, 'generic_decline');
  const refunded = events.find((e) => e.type === 'charge.refunded' && e.data.object.id === paid.latest_charge);
  const ch = refunded.data.object;
  assert.equal(ch.object, 'charge');
  assert.equal(ch.amount_refunded, 800);
  assert.equal(ch.refunded, true);
  assert.equal(ch.payment_intent, paid.id);
  assert.equal(ch.metadata.order_id, 'ord_hook');

  // A forged body does not verify.
  const { events: raw } = await http('GET', `${RECEIVER}/_events`);
  assert.throws(
    () => stripe.webhooks.constructEvent(raw[0].body.replace('"livemode":false', '"livemode":true'), raw[0].signature, SECRET),
    Stripe.errors.StripeSignatureVerificationError,
  );
});

test('webhooks are retried until the endpoint accepts them', async () => {
  // Quiet first, so that the two failures hit this test's event and no earlier one.
  await eventually(async () => (await mock('GET', '/_mock/stats')).webhooks.pending === 0, 'no pending webhooks');
  await http('POST', `${RECEIVER}/_fail`, { count: 2 });
  const pi = await authorize({ amount: 4321 });
  const ev = await eventually(async () => {
    const evs = await receivedEvents();
    return evs.find((e) => e.type === 'payment_intent.amount_capturable_updated' && e.data.object.id === pi.id);
  }, 'the retried event');
  assert.equal(ev.data.object.amount, 4321);
  const log = await mock('GET', `/_mock/webhooks?object_id=${pi.id}`);
  const entry = log.data.find((e) => e.id === ev.id);
  assert.equal(entry.status, 'delivered');
  assert.ok(entry.attempts >= 3, `attempts ${entry.attempts}`);
});

test('stats count what took effect', async () => {
  const s = await mock('GET', '/_mock/stats');
  for (const k of ['payment_intents', 'captured', 'canceled', 'refunds', 'requests']) {
    assert.equal(typeof s[k], 'number', k);
  }
  assert.ok(s.payment_intents > 0 && s.captured > 0 && s.canceled > 0 && s.refunds > 0);
});

// ---- the wire contract: one API version, and the spec's required fields ----

// The raw answer of the mock (no SDK in between): status, headers, parsed body.
async function raw(method, path, { form, version, key = 'sk_test_123' } = {}) {
  const headers = { authorization: `Bearer ${key}` };
  if (version !== undefined) headers['stripe-version'] = version;
  if (form) headers['content-type'] = 'application/x-www-form-urlencoded';
  const res = await fetch(MOCK.origin + path, {
    method, headers, body: form ? new URLSearchParams(form).toString() : undefined,
  });
  return { status: res.status, headers: res.headers, body: await res.json() };
}

test('answers in the version the SDK pins, and refuses one it cannot be', async () => {
  const pinned = require('./stripe_required.json').api_version;
  assert.equal(pinned, '2024-06-20');
  // The SDK sends its pinned version; the mock says it answered in it.
  const pi = await authorize();
  assert.equal(pi.lastResponse.headers['stripe-version'], pinned);
  // No header: the pinned version (as an account's default would be).
  const bare = await raw('GET', '/v1/payment_intents?limit=1');
  assert.equal(bare.status, 200);
  assert.equal(bare.headers.get('stripe-version'), pinned);
  // Malformed or another version: Stripe's 400, nothing applied.
  const before = (await raw('GET', '/v1/payment_intents?limit=100')).body.data.length;
  for (const v of ['2024-6-20', 'latest', '2023-10-16', '2024-09-30.acacia']) {
    const r = await raw('POST', '/v1/payment_intents', {
      version: v, form: { amount: '100', currency: 'usd' },
    });
    assert.equal(r.status, 400, v);
    assert.equal(r.body.error.type, 'invalid_request_error');
    assert.ok(r.body.error.message.startsWith(`Invalid Stripe API version: ${v}`), r.body.error.message);
  }
  assert.equal((await raw('GET', '/v1/payment_intents?limit=100')).body.data.length, before);
  // The SDK configured with another version gets the same refusal.
  const other = client('sk_test_123', { apiVersion: '2023-10-16', maxNetworkRetries: 0 });
  await assert.rejects(other.paymentIntents.retrieve(pi.id), {
    type: 'StripeInvalidRequestError', statusCode: 400,
  });
});

test('stripe_required.json is what the pinned SDK\'s typings say', () => {
  const { extract } = require('./required_fields.js');
  assert.deepEqual(require('./stripe_required.json'), extract());
});

const REQUIRED = require('./stripe_required.json').objects;

function jsonType(v) {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  return typeof v; // string, number, boolean, object
}

// Every required field of `kind` is in obj with an allowed type; then the nested objects
// listed for it ("charge.outcome", ...) when they are present and not null.
function checkRequired(kind, obj, where) {
  const spec = REQUIRED[kind];
  assert.ok(spec, `no required list for ${kind}`);
  assert.equal(jsonType(obj), 'object', `${where}: not an object`);
  for (const [field, types] of Object.entries(spec)) {
    assert.ok(Object.hasOwn(obj, field), `${where}: required field ${field} missing`);
    assert.ok(types.includes(jsonType(obj[field])),
      `${where}.${field}: ${jsonType(obj[field])}, the spec allows ${types.join('|')}`);
  }
  for (const nested of Object.keys(REQUIRED)) {
    if (!nested.startsWith(`${kind}.`) || nested.slice(kind.length + 1).includes('.')) continue;
    const field = nested.slice(kind.length + 1);
    if (obj[field] !== null && obj[field] !== undefined)
      checkRequired(nested, obj[field], `${where}.${field}`);
  }
}

test('every object the mock answers carries the spec\'s required fields, typed', async () => {
  const form = (extra) => ({ amount: '1000', currency: 'usd', 'payment_method_types[0]': 'card',
    capture_method: 'manual', confirm: 'true', payment_method: 'pm_card_visa',
    'metadata[order_id]': 'ord_req', ...extra });
  const seen = new Set();
  const check = (kind, obj, where) => { checkRequired(kind, obj, where); seen.add(kind); };

  // PaymentIntents in each shape: authorized, captured, 3-D Secure, declined, canceled.
  const auth = await raw('POST', '/v1/payment_intents', { form: form() });
  assert.equal(auth.status, 200);
  check('payment_intent', auth.body, 'authorized');
  const cap = await raw('POST', `/v1/payment_intents/${auth.body.id}/capture`, { form: {} });
  check('payment_intent', cap.body, 'captured');
  const tds = await raw('POST', '/v1/payment_intents',
    { form: form({ payment_method: 'pm_card_authenticationRequired' }) });
  assert.equal(tds.body.status, 'requires_action');
  check('payment_intent', tds.body, 'requires_action');
  const declined = await raw('POST', '/v1/payment_intents',
    { form: form({ payment_method: 'pm_card_visa_chargeDeclinedInsufficientFunds' }) });
  assert.equal(declined.status, 402);
  check('error', declined.body.error, 'decline error');
  check('payment_intent', declined.body.error.payment_intent, 'decline error.payment_intent');
  const failedPi = await raw('GET', `/v1/payment_intents/${declined.body.error.payment_intent.id}`);
  check('error', failedPi.body.last_payment_error, 'last_payment_error');
  const voided = await raw('POST', '/v1/payment_intents', { form: form() });
  const canceled = await raw('POST', `/v1/payment_intents/${voided.body.id}/cancel`, { form: {} });
  check('payment_intent', canceled.body, 'canceled');

  // Charges: captured, failed, voided.
  for (const [what, pi] of [['captured', cap.body], ['voided', canceled.body]]) {
    const ch = await raw('GET', `/v1/charges/${pi.latest_charge}`);
    assert.equal(ch.status, 200);
    check('charge', ch.body, `charge (${what})`);
    assert.equal(ch.body.object, 'charge');
  }
  const failedCh = await raw('GET', `/v1/charges/${declined.body.error.charge}`);
  check('charge', failedCh.body, 'charge (failed)');
  assert.equal(failedCh.body.status, 'failed');

  // Refunds, and lists of each.
  const refund = await raw('POST', '/v1/refunds', { form: { payment_intent: cap.body.id, amount: '300' } });
  assert.equal(refund.status, 200);
  check('refund', refund.body, 'refund');
  for (const [path, kind] of [['/v1/payment_intents?limit=3', 'payment_intent'], ['/v1/refunds?limit=3', 'refund']]) {
    const page = await raw('GET', path);
    check('list', page.body, path);
    assert.ok(page.body.data.length > 0);
    for (const item of page.body.data) check(kind, item, `${path} item`);
  }

  // Other errors: unknown object, bad key, bad version.
  check('error', (await raw('GET', '/v1/payment_intents/pi_nope')).body.error, '404');
  check('error', (await raw('GET', '/v1/payment_intents', { key: 'sk_live_x' })).body.error, '401');
  check('error', (await raw('GET', '/v1/payment_intents', { version: 'x' })).body.error, 'version');

  // Events, as delivered (raw bodies; the signature checked by the SDK).
  const events = await eventually(async () => {
    const evs = (await receivedEvents()).filter((e) => e.data.object.id === cap.body.id);
    return evs.length >= 2 ? evs : null;
  }, 'the captured intent\'s events');
  for (const e of events) {
    check('event', e, `event ${e.type}`);
    assert.equal(e.api_version, '2024-06-20');
    check('payment_intent', e.data.object, `event ${e.type} data.object`);
  }
  assert.deepEqual([...seen].sort(), ['charge', 'error', 'event', 'list', 'payment_intent', 'refund']);
});
