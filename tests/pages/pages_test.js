'use strict';
// The admin page (checkoutd's GET /admin) and the demo storefront (bin/mock-shop) in
// headless Chromium, against a real make run (tests/pages/run.sh starts it). What a
// person would see: the admin page shows an order and its saga timeline and the stock
// that this test just made, and updates by itself; on the storefront two phones buy
// the last unit at once and exactly one gets the confirmation, the other "sold out";
// the phone that pays in the app (checkout -> 202 client_secret -> confirm at the
// provider with the publishable key -> confirm) ends confirmed.
const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const puppeteer = require('puppeteer-core');

const API = process.env.API_URL;
const KEY = process.env.ADMIN_API_KEY;
const SHOP = process.env.SHOP_URL;
const ART = process.env.ARTIFACTS;

let browser;
test.before(async () => {
  browser = await puppeteer.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run'],
  });
});
test.after(async () => { if (browser) await browser.close(); });

async function call(method, url, { token, body, idem } = {}) {
  const headers = {};
  if (token) headers.Authorization = 'Bearer ' + token;
  if (body) headers['Content-Type'] = 'application/json';
  if (idem) headers['Idempotency-Key'] = idem;
  const res = await fetch(url, { method, headers, body: body ? JSON.stringify(body) : undefined });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text ? JSON.parse(text) : null };
}

// A page that records what would show in its console: errors and CSP refusals.
async function openPage() {
  const page = await browser.newPage();
  await page.setViewport({ width: 1280, height: 860 });
  const problems = [];
  page.on('console', (m) => { if (m.type() === 'error') problems.push(m.text()); });
  page.on('pageerror', (e) => problems.push(String(e)));
  return { page, problems };
}

async function shopper() {
  const s = await call('POST', SHOP + '/demo/session');
  assert.equal(s.status, 201);
  return s.body;
}

test('GET /admin asks for the admin key and serves a strict CSP', async () => {
  const none = await fetch(API + '/admin');
  assert.equal(none.status, 401);
  assert.match(none.headers.get('www-authenticate'), /^Basic realm="checkoutd admin"/);
  const wrong = await fetch(API + '/admin', {
    headers: { Authorization: 'Basic ' + Buffer.from('admin:not-the-key').toString('base64') },
  });
  assert.equal(wrong.status, 401);
  const shopperToken = (await shopper()).token;
  const asShopper = await call('GET', API + '/v1/admin/overview', { token: shopperToken });
  assert.equal(asShopper.status, 401, 'a shopper token is no admin key');
  const ok = await fetch(API + '/admin', {
    headers: { Authorization: 'Basic ' + Buffer.from('admin:' + KEY).toString('base64') },
  });
  assert.equal(ok.status, 200);
  const csp = ok.headers.get('content-security-policy');
  assert.match(csp, /default-src 'none'/);
  assert.match(csp, /script-src 'self'/);
  assert.match(csp, /connect-src 'self'/);
  assert.match(csp, /frame-ancestors 'none'/);
  const html = await ok.text();
  assert.doesNotMatch(html, /<script>|<style>| on[a-z]+=|https?:\/\//, 'no inline code, no CDN');
  assert.ok(!html.includes(KEY), 'the key is not in the page');
});

test('the admin page shows a new order with its timeline and the stock, live', async () => {
  const sku = 'PAGES-' + Date.now();
  const item = await call('POST', API + '/v1/admin/items', {
    token: KEY, body: { sku, name: 'Admin page test item', price: 2500, currency: 'usd', stock: 3 },
  });
  assert.equal(item.status, 201);
  const buyer = await shopper();
  const order = await call('POST', API + '/v1/checkout', {
    token: buyer.token, idem: 'pages-admin-1',
    body: { items: [{ item_id: item.body.id, quantity: 1 }], payment_method: 'pm_card_visa' },
  });
  assert.equal(order.status, 201);
  const orderId = order.body.id || order.body.order_id;

  const { page, problems } = await openPage();
  await page.authenticate({ username: 'admin', password: KEY });
  const res = await page.goto(API + '/admin', { waitUntil: 'domcontentloaded' });
  assert.equal(res.status(), 200);
  const card = `[data-order-id="${orderId}"]`;
  await page.waitForSelector(`${card} .badge.confirmed`, { timeout: 15000 });
  const timeline = await page.$$eval(`${card} ol.timeline li .to`, (els) => els.map((e) => e.textContent));
  for (const s of ['pending', 'reserved', 'authorized', 'confirmed'])
    assert.ok(timeline.includes(s), `the timeline shows ${s}: ${timeline.join(' > ')}`);
  const stockCell = `tr[data-item-id="${item.body.id}"] td.stock`;
  await page.waitForFunction((sel) => {
    const td = document.querySelector(sel);
    return td && td.textContent === '2';
  }, { timeout: 15000 }, stockCell);

  // It updates by itself: a second purchase shows without a reload.
  const second = await call('POST', API + '/v1/checkout', {
    token: buyer.token, idem: 'pages-admin-2',
    body: { items: [{ item_id: item.body.id, quantity: 2 }], payment_method: 'pm_card_visa' },
  });
  assert.equal(second.status, 201);
  await page.waitForFunction((sel) => {
    const td = document.querySelector(sel);
    return td && td.textContent === '0' && td.classList.contains('zero');
  }, { timeout: 15000 }, stockCell);
  await page.waitForSelector(`[data-order-id="${second.body.id || second.body.order_id}"] .badge.confirmed`,
    { timeout: 15000 });
  const live = await page.$eval('#live', (e) => e.textContent);
  assert.match(live, /^live · updated/);
  const events = await page.$$eval('#payment-events li', (els) => els.length);
  assert.ok(events >= 1);
  assert.deepEqual(problems, [], 'no console errors or CSP refusals');
  await page.screenshot({ path: path.join(ART, 'admin.png'), fullPage: true });
  await page.close();
});

async function outcome(page, phone) {
  const sel = `#${phone} .result`;
  await page.waitForFunction((s) => {
    const o = document.querySelector(s).dataset.outcome;
    return o !== 'idle' && o !== 'pending';
  }, { timeout: 30000 }, sel);
  return page.$eval(sel, (e) => e.dataset.outcome);
}

test('storefront: two phones, one unit, one confirmation and one out of stock', async () => {
  const { page, problems } = await openPage();
  await page.setViewport({ width: 960, height: 720 });
  await page.goto(SHOP, { waitUntil: 'domcontentloaded' });
  await page.waitForSelector('body[data-ready="true"]', { timeout: 20000 });
  const csp = (await fetch(SHOP + '/')).headers.get('content-security-policy');
  assert.match(csp, new RegExp(`connect-src 'self' ${process.env.STRIPE_API_BASE}`));
  await page.waitForFunction(() => document.querySelector('#phone-a .stock').textContent === '1 left');
  await page.click('#race');
  const outcomes = [await outcome(page, 'phone-a'), await outcome(page, 'phone-b')];
  assert.deepEqual([...outcomes].sort(), ['confirmed', 'out_of_stock'], `outcomes: ${outcomes}`);
  await page.waitForFunction(() => document.querySelector('#phone-a .stock').textContent === 'sold out');
  // What the shop shows is what checkoutd did: one confirmed order for the drop.
  const drop = (await page.$eval('#drop-info', (e) => e.textContent)).split(':')[0];
  const orders = await call('GET', API + '/v1/admin/orders?limit=20', { token: KEY });
  const confirmed = orders.body.data.filter((o) => o.status === 'confirmed');
  const items = await call('GET', API + '/v1/admin/overview', { token: KEY });
  const item = items.body.items.find((i) => i.sku === drop);
  assert.ok(item, `the drop ${drop} is in the catalogue`);
  assert.equal(item.stock_available, 0);
  assert.equal(confirmed.filter((o) => o.lines.some((l) => l.item_id === item.id)).length, 1);
  assert.deepEqual(problems.filter((p) => !/status of 409/.test(p)), [],
    'no console errors beyond the 409s (out of stock)');
  // The mobile flow on the same page, for the screenshot of both.
  await page.click('#phone-c .pay');
  assert.equal(await outcome(page, 'phone-c'), 'confirmed');
  await page.screenshot({ path: path.join(ART, 'storefront.png'), fullPage: true });
  await page.close();
});

test('storefront: the mobile flow pays with a test card and ends confirmed', async () => {
  const { page, problems } = await openPage();
  const provider = [];
  page.on('request', (r) => {
    if (r.url().startsWith(process.env.STRIPE_API_BASE)) provider.push(r.method() + ' ' + r.url());
  });
  await page.goto(SHOP, { waitUntil: 'domcontentloaded' });
  await page.waitForSelector('body[data-ready="true"]', { timeout: 20000 });
  await page.select('#card', 'pm_card_visa');
  await page.click('#phone-c .pay');
  assert.equal(await outcome(page, 'phone-c'), 'confirmed');
  const steps = await page.$$eval('#phone-c ol.steps li', (els) => els.map((e) => e.textContent));
  assert.match(steps[0], /202 awaiting_payment/);
  assert.match(steps[1], /PaymentIntent requires_capture/);
  // The page went to the provider itself (CORS: a preflight, then the confirm).
  assert.ok(provider.some((r) => /^POST .*\/v1\/payment_intents\/pi_[^/]+\/confirm$/.test(r)),
    `requests to the provider: ${provider}`);
  const orderId = (await page.$eval('#phone-c .result small', (e) => e.textContent)).replace('order ', '');
  const order = await call('GET', API + '/v1/admin/orders/' + orderId, { token: KEY });
  assert.equal(order.status, 200);
  assert.equal(order.body.status, 'confirmed');
  assert.equal(order.body.flow, 'mobile');
  // A 409 is the confirm that met the webhook already capturing; the page polls on.
  assert.deepEqual(problems.filter((p) => !/status of 409/.test(p)), []);
  await page.screenshot({ path: path.join(ART, 'storefront-mobile.png'), fullPage: true });

  // A declined test card: the app shows the decline; the order does not confirm.
  await page.select('#card', 'pm_card_visa_chargeDeclinedInsufficientFunds');
  await page.click('#phone-c .pay');
  assert.equal(await outcome(page, 'phone-c'), 'declined');
  await page.close();
});
