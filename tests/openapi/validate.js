'use strict';
// Real calls to a running checkoutd, each answer validated against the
// operation of docs/openapi.yaml that the request reached (tests/openapi/run.sh
// starts the server and sets the environment read below).
//
// An answer passes when its status is documented for the operation, its media
// type is one the status documents, its body matches that media type's schema,
// every required response header is present and valid, and an error's code
// answers with the status the ErrorCode schema gives it (x-status). A 2xx
// answer's request must match the documented request body and required
// headers too. A request answered 404 not_found (or 405) by the router reaches
// no operation of this build: it is printed as skipped (an endpoint of the
// description that has not landed). Every operation must be reached by at
// least one call, and the registry of src/co_errors.h must match ErrorCode.
const fs = require('fs');
const path = require('path');
const crypto = require('crypto');
const YAML = require('yaml');
const Ajv2020 = require('ajv/dist/2020');
const addFormats = require('ajv-formats');

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set (run tests/openapi/run.sh)`);
  return v;
};
const BASE = env('CHECKOUTD_URL');
const MOCK = env('MOCK_STRIPE_URL');
const WHSEC = env('STRIPE_WEBHOOK_SECRET');
const RESTOCK_SECRET = env('RESTOCK_WEBHOOK_SECRET');
const JWT_SECRET = env('AUTH_JWT_SECRET');
const ADMIN = env('ADMIN_API_KEY');
const ROOT = env('CO_ROOT');
const SPEC_PATH = env('OPENAPI_SPEC');

const spec = YAML.parse(fs.readFileSync(SPEC_PATH, 'utf8'));
const ajv = new Ajv2020({ strict: false, allErrors: true, validateSchema: false });
addFormats(ajv);
ajv.addSchema(spec, 'openapi.json');

// ------------------------------------------------------------ the description

const esc = (s) => s.replace(/~/g, '~0').replace(/\//g, '~1');
const unesc = (s) => s.replace(/~1/g, '/').replace(/~0/g, '~');
function at(pointer) {
  let o = spec;
  for (const part of pointer.replace(/^#\//, '').split('/')) o = o?.[unesc(part)];
  return o;
}
// Follows $ref of responses, parameters and headers; returns [object, pointer].
function deref(obj, pointer) {
  while (obj && obj.$ref) {
    pointer = obj.$ref;
    obj = at(obj.$ref);
  }
  return [obj, pointer];
}
const validators = new Map();
function validatorAt(pointer) {
  if (!validators.has(pointer)) validators.set(pointer, ajv.compile({ $ref: `openapi.json${pointer}` }));
  return validators.get(pointer);
}

const METHODS = ['get', 'post', 'put', 'patch', 'delete'];
const routes = Object.keys(spec.paths).map((tpl) => ({
  tpl,
  params: (tpl.match(/\{/g) || []).length,
  re: new RegExp('^' + tpl.replace(/\{[^}]+\}/g, '[^/]+') + '$'),
}));
// The path template of the description that a concrete path falls under
// (a literal segment wins over a parameter).
function templateOf(p) {
  const hits = routes.filter((r) => r.re.test(p)).sort((a, b) => a.params - b.params);
  return hits.length ? hits[0].tpl : null;
}

// ------------------------------------------------------------ the calls

const b64u = (b) => Buffer.from(b).toString('base64url');
function jwt(sub, ttl = 3600) {
  const now = Math.floor(Date.now() / 1000);
  const h = b64u(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
  const p = b64u(JSON.stringify({ sub, iat: now - 60, exp: now + ttl }));
  const s = crypto.createHmac('sha256', JWT_SECRET).update(`${h}.${p}`).digest('base64url');
  return `${h}.${p}.${s}`;
}
function signature(secret, body, t = Math.floor(Date.now() / 1000)) {
  const v1 = crypto.createHmac('sha256', secret).update(`${t}.${body}`).digest('hex');
  return `t=${t},v1=${v1}`;
}
const uuid = () => crypto.randomUUID();

const results = { passed: 0, failed: 0, skipped: 0 };
const seen = new Map(); // "get /path" -> Set of statuses (or 'skipped')
const failures = [];

function mark(opKey, what) {
  if (!seen.has(opKey)) seen.set(opKey, new Set());
  seen.get(opKey).add(what);
}

// One call: sends it, checks the answer against the description, records it.
// opts: headers, json (a body to send as JSON), body (raw text), expect (the
// status this call is meant to provoke: a different documented status is
// still checked against the description, but reported as a failure too).
async function call(name, method, p, opts = {}) {
  const headers = { ...(opts.headers || {}) };
  let body;
  if (opts.json !== undefined) {
    body = JSON.stringify(opts.json);
    headers['Content-Type'] ??= 'application/json';
  } else if (opts.body !== undefined) {
    body = opts.body;
    headers['Content-Type'] ??= 'application/json';
  }
  const res = await fetch(BASE + p, { method, headers, body });
  const text = await res.text();
  const rec = { name, method, path: p, status: res.status, headers: res.headers, text, sent: { headers, body } };
  const problems = check(rec, opts);
  const label = `${method} ${p.length > 70 ? p.slice(0, 67) + '...' : p} -> ${res.status}`;
  if (problems === 'skip') {
    results.skipped++;
    console.log(`skip  ${name}: ${label} (route not in this build)`);
  } else if (problems.length) {
    results.failed++;
    failures.push({ name, label, problems, text });
    console.log(`FAIL  ${name}: ${label}`);
    for (const pr of problems) console.log(`        ${pr}`);
    console.log(`        body: ${text.slice(0, 400)}`);
  } else {
    results.passed++;
    console.log(`ok    ${name}: ${label}`);
  }
  let json;
  try { json = JSON.parse(text); } catch { json = undefined; }
  return { status: res.status, json, headers: res.headers, text };
}

function ajvErrors(v) {
  return (v.errors || []).slice(0, 6).map((e) => `${e.instancePath || '(root)'} ${e.message}` +
    (e.params && Object.keys(e.params).length ? ` ${JSON.stringify(e.params)}` : ''));
}

function check(rec, opts) {
  const problems = [];
  const urlPath = rec.path.split('?')[0];
  const tpl = templateOf(urlPath);
  const m = rec.method.toLowerCase();
  let json;
  try { json = JSON.parse(rec.text); } catch { json = undefined; }
  const code = json?.error?.code;

  if (tpl === null || !spec.paths[tpl][m]) return [`no operation in the description for ${rec.method} ${urlPath}`];
  const opKey = `${m} ${tpl}`;
  if ((rec.status === 404 && code === 'not_found') || (rec.status === 405 && code === 'method_not_allowed')) {
    mark(opKey, 'skipped');
    return 'skip';
  }
  mark(opKey, rec.status);
  const op = spec.paths[tpl][m];
  const opPtr = `#/paths/${esc(tpl)}/${m}`;
  if (opts.expect !== undefined && opts.expect !== rec.status && !(Array.isArray(opts.expect) && opts.expect.includes(rec.status)))
    problems.push(`meant to provoke ${JSON.stringify(opts.expect)}, got ${rec.status}`);

  const [resp, respPtr] = deref(op.responses?.[String(rec.status)], `${opPtr}/responses/${rec.status}`);
  if (!resp) {
    problems.push(`status ${rec.status} is not documented for ${rec.method} ${tpl}`);
    return problems;
  }

  // Media type and body.
  const ct = (rec.headers.get('content-type') || '').split(';')[0].trim().toLowerCase();
  if (resp.content) {
    const media = resp.content[ct];
    if (!media) {
      problems.push(`Content-Type ${ct || '(none)'} is not documented (${Object.keys(resp.content).join(', ')})`);
    } else if (media.schema) {
      const ptr = `${respPtr}/content/${esc(ct)}/schema`;
      let value = rec.text;
      if (ct === 'application/json' || ct.endsWith('+json')) {
        if (json === undefined) problems.push('the body is not JSON');
        value = json;
      }
      if (value !== undefined) {
        const v = validatorAt(ptr);
        if (!v(value)) problems.push(...ajvErrors(v).map((e) => `body: ${e}`));
      }
    }
  } else if (rec.text.length) {
    problems.push('a body is sent but none is documented');
  }

  // Response headers.
  for (const [hname, hdef0] of Object.entries(resp.headers || {})) {
    const [hdef, hptr] = deref(hdef0, `${respPtr}/headers/${esc(hname)}`);
    const val = rec.headers.get(hname);
    if (val === null) {
      if (hdef.required) problems.push(`header ${hname} is required but missing`);
      continue;
    }
    if (hdef.schema) {
      const sv = validatorAt(`${hptr}/schema`);
      const typed = hdef.schema.type === 'integer' && /^-?[0-9]+$/.test(val) ? Number(val) : val;
      if (!sv(typed)) problems.push(...ajvErrors(sv).map((e) => `header ${hname}: ${e}`));
    }
  }

  // An error code answers with its own status.
  const statusOf = spec.components.schemas.ErrorCode['x-status'];
  if (code !== undefined && statusOf[code] !== undefined && statusOf[code] !== rec.status)
    problems.push(`code ${code} is documented with status ${statusOf[code]}, answered ${rec.status}`);

  // Who may call: an operation with security answers nothing but 401 to a
  // request without credentials; one without answers no 401.
  const security = op.security ?? spec.security ?? [];
  const open = security.length === 0 || security.some((req) => Object.keys(req).length === 0);
  const hasAuth = Object.keys(rec.sent.headers).some((h) => h.toLowerCase() === 'authorization');
  if (!open && !hasAuth && rec.status < 300) problems.push('answered without credentials, but the operation documents security');
  if (open && rec.status === 401) problems.push('401 from an operation documented without security');

  // A request the server accepted must be one the description allows, and a
  // body refused as invalid_request one it refuses too (unless the field at
  // fault is a header or query parameter, or the rule is not a schema's).
  const params = [...(spec.paths[tpl].parameters || []), ...(op.parameters || [])].map((x) => deref(x)[0]);
  if (rec.status === 400 && code === 'invalid_request' && rec.sent.body !== undefined && !opts.schemaValid) {
    const [rb, rbPtr] = deref(op.requestBody, `${opPtr}/requestBody`);
    let sentJson;
    try { sentJson = JSON.parse(rec.sent.body); } catch { sentJson = undefined; }
    const param = json?.error?.param;
    const paramIsNotBody = params.some((x) => x.name.toLowerCase() === String(param).toLowerCase());
    if (rb?.content?.['application/json'] && sentJson !== undefined && !paramIsNotBody) {
      const v = validatorAt(`${rbPtr}/content/application~1json/schema`);
      if (v(sentJson)) problems.push(`refused (param ${param}) a body the documented request schema accepts`);
    }
  }
  if (rec.status >= 200 && rec.status < 300) {
    const query = new URL(rec.path, 'http://x').searchParams;
    for (const [qname, qval] of query) {
      const idx = params.findIndex((x) => x.in === 'query' && x.name === qname);
      if (idx < 0) {
        problems.push(`accepted the query parameter ${qname}, which the operation does not document`);
        continue;
      }
      const prm = params[idx];
      const typed = prm.schema?.type === 'integer' && /^-?[0-9]+$/.test(qval) ? Number(qval) : qval;
      const own = (op.parameters || []).some((x) => deref(x)[0] === prm);
      const where = own ? `${opPtr}/parameters` : `#/paths/${esc(tpl)}/parameters`;
      const list = own ? op.parameters : spec.paths[tpl].parameters;
      const i = list.findIndex((x) => deref(x)[0] === prm);
      const [, pptr] = deref(list[i], `${where}/${i}`);
      const v = validatorAt(`${pptr}/schema`);
      if (!v(typed)) problems.push(...ajvErrors(v).map((e) => `accepted query ${qname}=${qval}: ${e}`));
    }
    for (const prm of params) {
      if (prm.in === 'header' && prm.required) {
        const sent = Object.keys(rec.sent.headers).some((h) => h.toLowerCase() === prm.name.toLowerCase());
        if (!sent) problems.push(`accepted without the required header ${prm.name}`);
      }
    }
    const [rb, rbPtr] = deref(op.requestBody, `${opPtr}/requestBody`);
    if (rb && rec.sent.body !== undefined) {
      const media = rb.content?.['application/json'];
      let sentJson;
      try { sentJson = JSON.parse(rec.sent.body); } catch { sentJson = undefined; }
      if (!media) problems.push('accepted a body the operation does not document');
      else if (sentJson === undefined) problems.push('accepted a body that is not JSON');
      else {
        const v = validatorAt(`${rbPtr}/content/application~1json/schema`);
        if (!v(sentJson)) problems.push(...ajvErrors(v).map((e) => `accepted request body: ${e}`));
      }
    } else if (rb?.required && rec.sent.body === undefined) {
      problems.push('accepted without the required request body');
    }
  }
  return problems;
}

// The provider's side of the mobile flow: the app confirms the PaymentIntent.
async function confirmAtMock(pi, pm) {
  const res = await fetch(`${MOCK}/v1/payment_intents/${pi}/confirm`, {
    method: 'POST',
    headers: { Authorization: 'Bearer sk_test_openapi', 'Content-Type': 'application/x-www-form-urlencoded' },
    body: `payment_method=${pm}`,
  });
  await res.text();
  return res.status;
}

// Injects a fault at mock-stripe (POST /_mock/faults), or clears them all (match null).
async function mockFault(match, action, count, delayMs) {
  const res = match === null
    ? await fetch(`${MOCK}/_mock/faults`, { method: 'DELETE' })
    : await fetch(`${MOCK}/_mock/faults`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ match, action, count, delay_ms: delayMs }),
    });
  await res.text();
  if (res.status >= 300) throw new Error(`mock-stripe refused the fault (${res.status})`);
}

// The orders of a shopper, read through the admin list (not a checked call).
async function ordersOf(user) {
  const res = await fetch(`${BASE}/v1/admin/orders?limit=100`, { headers: { Authorization: `Bearer ${ADMIN}` } });
  const page = await res.json();
  return (page.data || []).filter((o) => o.user_id === user);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ------------------------------------------------------------ the registry

function checkRegistry() {
  const header = fs.readFileSync(path.join(ROOT, 'src/co_errors.h'), 'utf8');
  const rows = [...header.matchAll(/^\s*X\((\w+),\s*(\d+),\s*(\d+),/gm)].map((m) => ({ code: m[1], status: Number(m[3]) }));
  const schema = spec.components.schemas.ErrorCode;
  const statusOf = schema['x-status'] || {};
  const problems = [];
  if (rows.length === 0) problems.push('no rows read from src/co_errors.h');
  for (const r of rows) {
    if (!schema.enum.includes(r.code)) problems.push(`registry code ${r.code} is not in ErrorCode's enum`);
    if (statusOf[r.code] !== r.status) problems.push(`registry code ${r.code} is ${r.status}, x-status says ${statusOf[r.code]}`);
  }
  for (const c of schema.enum) if (statusOf[c] === undefined) problems.push(`ErrorCode ${c} has no x-status`);
  for (const c of Object.keys(statusOf)) if (!schema.enum.includes(c)) problems.push(`x-status names ${c}, not in the enum`);
  const pending = schema.enum.filter((c) => !rows.some((r) => r.code === c));
  if (problems.length) {
    results.failed++;
    console.log('FAIL  error registry (src/co_errors.h) against ErrorCode');
    for (const p of problems) console.log(`        ${p}`);
  } else {
    results.passed++;
    console.log(`ok    error registry: ${rows.length} codes of src/co_errors.h in ErrorCode with their statuses`);
  }
  if (pending.length) console.log(`skip  ErrorCode codes not in this build's registry yet: ${pending.join(', ')}`);
}

// ------------------------------------------------------------ the script

async function main() {
  checkRegistry();
  const admin = { Authorization: `Bearer ${ADMIN}` };
  const alice = uuid(), bob = uuid(), carol = uuid(), dave = uuid();
  const as = (u) => ({ Authorization: `Bearer ${jwt(u)}` });
  const tag = crypto.randomBytes(4).toString('hex');

  // Health.
  await call('liveness', 'GET', '/healthz', { expect: 200 });
  await call('readiness', 'GET', '/readyz', { expect: 200 });
  await call('metrics', 'GET', '/metrics', { expect: 200 });

  // Catalogue, created by the operator.
  const mk = (sku, stock, price = 1500) => ({ sku: `${sku}-${tag}`, name: `Item ${sku}`, price, currency: 'usd', stock });
  const a = (await call('create item', 'POST', '/v1/admin/items', { headers: admin, json: mk('a', 50), expect: 201 })).json;
  const b = (await call('create item without stock', 'POST', '/v1/admin/items', { headers: admin, json: mk('b', 0), expect: 201 })).json;
  const c = (await call('create item of one unit', 'POST', '/v1/admin/items', { headers: admin, json: mk('c', 1, 900), expect: 201 })).json;
  if (!a?.id || !b?.id || !c?.id) throw new Error('could not create the items the calls need');
  await call('create item, sku taken', 'POST', '/v1/admin/items', { headers: admin, json: mk('a', 1), expect: 409 });
  await call('create item, bad price', 'POST', '/v1/admin/items', { headers: admin, json: { ...mk('d', 1), price: -1 }, expect: 400 });
  await call('create item, invalid JSON', 'POST', '/v1/admin/items', { headers: admin, body: '{"sku":', expect: 400 });
  await call('create item, no key', 'POST', '/v1/admin/items', { json: mk('e', 1), expect: 401 });
  await call('create item, shopper token', 'POST', '/v1/admin/items', { headers: as(alice), json: mk('e', 1), expect: 401 });
  await call('create item, text/plain', 'POST', '/v1/admin/items', { headers: { ...admin, 'Content-Type': 'text/plain' }, body: JSON.stringify(mk('f', 1)), expect: 415 });
  await call('create item, body over 64 KiB', 'POST', '/v1/admin/items', { headers: admin, json: { ...mk('g', 1), name: 'x'.repeat(70000) }, expect: 413 });

  await call('item', 'GET', `/v1/items/${a.id}`, { expect: 200 });
  await call('item, unknown id', 'GET', `/v1/items/${uuid()}`, { expect: 404 });
  await call('item, not a uuid', 'GET', '/v1/items/nope', { expect: 404 });
  await call('items', 'GET', '/v1/items', { expect: 200 });
  await call('items, a page of 2', 'GET', '/v1/items?limit=2', { expect: 200 });
  await call('items, limit 0', 'GET', '/v1/items?limit=0', { expect: 400 });
  await call('items, unknown starting_after', 'GET', `/v1/items?starting_after=${uuid()}`, { expect: 400 });

  // Server-flow checkout.
  const cart = (item, qty, pm) => ({ items: [{ item_id: item, quantity: qty }], ...(pm ? { payment_method: pm } : {}) });
  const key = () => `key-${crypto.randomBytes(8).toString('hex')}`;
  const k1 = key();
  const first = await call('checkout, card', 'POST', '/v1/checkout', { headers: { ...as(alice), 'Idempotency-Key': k1, 'X-Request-Id': `oa-${tag}` }, json: cart(a.id, 2, 'pm_card_visa'), expect: 201 });
  const paid = first.json;
  if (first.headers.get('x-request-id') !== `oa-${tag}`) {
    results.failed++;
    console.log(`FAIL  checkout, card: X-Request-Id ${first.headers.get('x-request-id')} is not the client's oa-${tag}`);
  }
  const paidId = paid?.id ?? paid?.order_id;
  if (paid === undefined) throw new Error('the first checkout failed');
  const replay = await call('checkout, replayed', 'POST', '/v1/checkout', { headers: { ...as(alice), 'Idempotency-Key': k1 }, json: cart(a.id, 2, 'pm_card_visa'), expect: 201 });
  if (replay.headers.get('idempotent-replayed') !== 'true') {
    results.failed++;
    console.log('FAIL  checkout, replayed: no Idempotent-Replayed: true');
  }
  await call('checkout, key reused', 'POST', '/v1/checkout', { headers: { ...as(alice), 'Idempotency-Key': k1 }, json: cart(a.id, 3, 'pm_card_visa'), expect: 422 });
  await call('checkout, no token', 'POST', '/v1/checkout', { headers: { 'Idempotency-Key': key() }, json: cart(a.id, 1, 'pm_card_visa'), expect: 401 });
  await call('checkout, forged token', 'POST', '/v1/checkout', { headers: { Authorization: `Bearer ${jwt(alice).slice(0, -4)}AAAA`, 'Idempotency-Key': key() }, json: cart(a.id, 1, 'pm_card_visa'), expect: 401 });
  await call('checkout, no key', 'POST', '/v1/checkout', { headers: as(alice), json: cart(a.id, 1, 'pm_card_visa'), expect: 400 });
  await call('checkout, unknown field', 'POST', '/v1/checkout', { headers: { ...as(alice), 'Idempotency-Key': key() }, json: { ...cart(a.id, 1, 'pm_card_visa'), coupon: 'x' }, expect: 400 });
  await call('checkout, invalid JSON', 'POST', '/v1/checkout', { headers: { ...as(alice), 'Idempotency-Key': key() }, body: '{"items":[', expect: 400 });
  await call('checkout, unknown item', 'POST', '/v1/checkout', { headers: { ...as(alice), 'Idempotency-Key': key() }, json: cart(uuid(), 1, 'pm_card_visa'), expect: 404 });
  await call('checkout, out of stock', 'POST', '/v1/checkout', { headers: { ...as(alice), 'Idempotency-Key': key() }, json: cart(c.id, 2, 'pm_card_visa'), expect: 409 });
  const declined = (await call('checkout, declined', 'POST', '/v1/checkout', { headers: { ...as(alice), 'Idempotency-Key': key() }, json: cart(a.id, 1, 'pm_card_visa_chargeDeclinedInsufficientFunds'), expect: 402 })).json;
  await call('checkout, card needs 3-D Secure', 'POST', '/v1/checkout', { headers: { ...as(alice), 'Idempotency-Key': key() }, json: cart(a.id, 1, 'pm_card_authenticationRequired'), expect: 402 });
  await call('checkout, text/plain', 'POST', '/v1/checkout', { headers: { ...as(alice), 'Idempotency-Key': key(), 'Content-Type': 'text/plain' }, body: JSON.stringify(cart(a.id, 1, 'pm_card_visa')), expect: 415 });
  await call('checkout, body over 64 KiB', 'POST', '/v1/checkout', { headers: { ...as(alice), 'Idempotency-Key': key() }, json: { ...cart(a.id, 1, 'pm_card_visa'), payment_method: 'pm_' + 'x'.repeat(70000) }, expect: 413 });

  // The provider slow, failing, refusing.
  const slowKey = key();
  await mockFault('POST /v1/payment_intents', 'delay', 1, 1500);
  const slow = call('checkout, provider slow', 'POST', '/v1/checkout', { headers: { ...as(carol), 'Idempotency-Key': slowKey }, json: cart(a.id, 1, 'pm_card_visa'), expect: 201 });
  // The first is inside the provider call once its order exists.
  for (let i = 0; i < 100 && !(await ordersOf(carol)).length; i++) await sleep(50);
  await call('checkout, same key while the first runs', 'POST', '/v1/checkout', { headers: { ...as(carol), 'Idempotency-Key': slowKey }, json: cart(a.id, 1, 'pm_card_visa'), expect: 409 });
  await slow;
  await mockFault('POST /v1/payment_intents/*/capture', 'status_500', 1000, 0);
  await call('checkout, capture failing for good', 'POST', '/v1/checkout', { headers: { ...as(carol), 'Idempotency-Key': key() }, json: cart(a.id, 1, 'pm_card_visa'), expect: 503 });
  await mockFault(null);
  await call('checkout, payment method the provider refuses', 'POST', '/v1/checkout', { headers: { ...as(carol), 'Idempotency-Key': key() }, json: cart(a.id, 1, 'pm_nonexistent'), expect: 502 });

  // Mobile flow: reserve, pay at the provider, confirm.
  const mob = (await call('checkout, mobile', 'POST', '/v1/checkout', { headers: { ...as(bob), 'Idempotency-Key': key() }, json: cart(a.id, 1), expect: 202 })).json;
  const mobId = mob?.id ?? mob?.order_id;
  await call('confirm before paying', 'POST', `/v1/orders/${mobId}/confirm`, { headers: as(bob), expect: 409 });
  if ((await confirmAtMock(mob.payment_intent, 'pm_card_visa')) !== 200) throw new Error('the mock did not confirm the intent');
  await call('confirm', 'POST', `/v1/orders/${mobId}/confirm`, { headers: as(bob), expect: 200 });
  await call('confirm, another shopper', 'POST', `/v1/orders/${mobId}/confirm`, { headers: as(carol), expect: 404 });
  await call('confirm, no token', 'POST', `/v1/orders/${mobId}/confirm`, { expect: 401 });

  // A shopper past MAX_UNPAID_UNITS (3): 429 with Retry-After.
  const held = (await call('checkout, mobile, 2 units', 'POST', '/v1/checkout', { headers: { ...as(dave), 'Idempotency-Key': key() }, json: cart(a.id, 2), expect: 202 })).json;
  const heldId = held?.id ?? held?.order_id;
  await call('checkout, mobile, past the unpaid limit', 'POST', '/v1/checkout', { headers: { ...as(dave), 'Idempotency-Key': key() }, json: cart(a.id, 2), expect: 429 });

  // Cancels: void a mobile reservation, refund a paid order.
  const mob2 = (await call('checkout, mobile, to cancel', 'POST', '/v1/checkout', { headers: { ...as(carol), 'Idempotency-Key': key() }, json: cart(a.id, 1), expect: 202 })).json;
  const mob2Id = mob2?.id ?? mob2?.order_id;
  await call('cancel, void', 'POST', `/v1/orders/${mob2Id}/cancel`, { headers: as(carol), expect: [200, 202] });
  await call('cancel, refund', 'POST', `/v1/orders/${paidId}/cancel`, { headers: as(alice), expect: [200, 202] });
  await sleep(300);
  await call('cancel, again', 'POST', `/v1/orders/${paidId}/cancel`, { headers: as(alice), expect: [200, 202, 409] });
  await call('cancel, declined order', 'POST', `/v1/orders/${declined?.error?.order_id}/cancel`, { headers: as(alice), expect: 409 });
  await call('cancel, unknown order', 'POST', `/v1/orders/${uuid()}/cancel`, { headers: as(alice), expect: 404 });
  await call('cancel, no token', 'POST', `/v1/orders/${paidId}/cancel`, { expect: 401 });

  // Reading orders.
  await call('order', 'GET', `/v1/orders/${mobId}`, { headers: as(bob), expect: 200 });
  await call('order, refunded', 'GET', `/v1/orders/${paidId}`, { headers: as(alice), expect: 200 });
  await call('order, failed', 'GET', `/v1/orders/${declined?.error?.order_id}`, { headers: as(alice), expect: 200 });
  await call('order, read by the admin key', 'GET', `/v1/orders/${mobId}`, { headers: admin, expect: 200 });
  await call('order, another shopper', 'GET', `/v1/orders/${mobId}`, { headers: as(alice), expect: 404 });
  await call('order, not a uuid', 'GET', '/v1/orders/nope', { headers: as(alice), expect: 404 });
  await call('order, expired token', 'GET', `/v1/orders/${mobId}`, { headers: { Authorization: `Bearer ${jwt(bob, -10)}` }, expect: 401 });
  await call('my orders', 'GET', '/v1/orders', { headers: as(alice), expect: 200 });
  await call('my orders, a page of 1', 'GET', '/v1/orders?limit=1', { headers: as(alice), expect: 200 });
  await call('my orders, limit 101', 'GET', '/v1/orders?limit=101', { headers: as(alice), expect: 400 });
  await call('my orders, no token', 'GET', '/v1/orders', { expect: 401 });

  // Back in stock.
  await call('subscribe', 'POST', `/v1/items/${b.id}/back-in-stock`, { headers: as(alice), expect: 201 });
  await call('subscribe, again', 'POST', `/v1/items/${b.id}/back-in-stock`, { headers: as(alice), expect: 200 });
  await call('subscribe, item in stock', 'POST', `/v1/items/${a.id}/back-in-stock`, { headers: as(alice), expect: [201, 409] });
  await call('subscribe, unknown item', 'POST', `/v1/items/${uuid()}/back-in-stock`, { headers: as(alice), expect: 404 });
  await call('subscribe, no token', 'POST', `/v1/items/${b.id}/back-in-stock`, { expect: 401 });

  // Hot-item mode.
  await call('hot mode on', 'POST', `/v1/admin/items/${a.id}/hot`, { headers: admin, json: { buckets: 4 }, expect: 200 });
  await call('hot mode', 'GET', `/v1/admin/items/${a.id}/hot`, { headers: admin, expect: 200 });
  await call('hot mode off', 'POST', `/v1/admin/items/${a.id}/hot`, { headers: admin, json: { buckets: 0 }, expect: 200 });
  await call('hot mode, 65 buckets', 'POST', `/v1/admin/items/${a.id}/hot`, { headers: admin, json: { buckets: 65 }, expect: 400 });
  await call('hot mode, unknown item', 'POST', `/v1/admin/items/${uuid()}/hot`, { headers: admin, json: { buckets: 2 }, expect: 404 });
  await call('hot mode, unknown item (read)', 'GET', `/v1/admin/items/${uuid()}/hot`, { headers: admin, expect: 404 });
  await call('hot mode, no key', 'GET', `/v1/admin/items/${a.id}/hot`, { expect: 401 });
  await call('hot mode, no key (switch)', 'POST', `/v1/admin/items/${a.id}/hot`, { json: { buckets: 2 }, expect: 401 });

  // Operator reads and actions.
  const page = (await call('admin orders', 'GET', '/v1/admin/orders', { headers: admin, expect: 200 })).json;
  await call('admin orders, by status', 'GET', '/v1/admin/orders?status=confirmed&limit=2', { headers: admin, expect: 200 });
  await call('admin orders, after one', 'GET', `/v1/admin/orders?starting_after=${page?.data?.[0]?.id}&limit=1`, { headers: admin, expect: 200 });
  await call('admin orders, several statuses', 'GET', '/v1/admin/orders?status=confirmed,failed', { headers: admin, expect: [200, 400] });
  await call('admin orders, by lease and age', 'GET', `/v1/admin/orders?lease=none&created_before=${new Date(Date.now() + 60000).toISOString().replace(/\.\d+Z$/, 'Z')}`, { headers: admin, expect: 200 });
  await call('admin orders, bad status', 'GET', '/v1/admin/orders?status=lost', { headers: admin, expect: 400 });
  await call('admin orders, limit 0', 'GET', '/v1/admin/orders?limit=0', { headers: admin, expect: 400 });
  await call('admin orders, unknown starting_after', 'GET', `/v1/admin/orders?starting_after=${uuid()}`, { headers: admin, expect: 400 });
  await call('admin orders, no key', 'GET', '/v1/admin/orders', { expect: 401 });
  await call('admin order', 'GET', `/v1/admin/orders/${mobId}`, { headers: admin, expect: 200 });
  await call('admin order, unknown', 'GET', `/v1/admin/orders/${uuid()}`, { headers: admin, expect: 404 });
  await call('admin order, shopper token', 'GET', `/v1/admin/orders/${mobId}`, { headers: as(bob), expect: 401 });
  await call('drive', 'POST', `/v1/admin/orders/${heldId}/drive`, { headers: admin, expect: 200 });
  await call('drive, with {}', 'POST', `/v1/admin/orders/${heldId}/drive`, { headers: admin, json: {}, expect: 200 });
  await call('drive, order ended', 'POST', `/v1/admin/orders/${declined?.error?.order_id}/drive`, { headers: admin, expect: 200 });
  await call('drive, unknown field', 'POST', `/v1/admin/orders/${heldId}/drive`, { headers: admin, json: { now: true }, expect: 400 });
  await call('drive, unknown order', 'POST', `/v1/admin/orders/${uuid()}/drive`, { headers: admin, expect: 404 });
  await call('drive, no key', 'POST', `/v1/admin/orders/${mobId}/drive`, { expect: 401 });
  await call('resolve, order ended', 'POST', `/v1/admin/orders/${declined?.error?.order_id}/resolve`, { headers: admin, json: { reason: 'checked by hand' }, expect: 409 });
  await call('resolve, no reason', 'POST', `/v1/admin/orders/${mobId}/resolve`, { headers: admin, json: {}, expect: 400 });
  await call('resolve, unknown order', 'POST', `/v1/admin/orders/${uuid()}/resolve`, { headers: admin, json: { reason: 'x' }, expect: 404 });
  await call('resolve, no key', 'POST', `/v1/admin/orders/${mobId}/resolve`, { json: { reason: 'x' }, expect: 401 });
  const basic = { Authorization: `Basic ${Buffer.from(`admin:${ADMIN}`).toString('base64')}` };
  await call('overview', 'GET', '/v1/admin/overview', { headers: admin, expect: 200 });
  await call('overview, Basic', 'GET', '/v1/admin/overview', { headers: basic, expect: 200 });
  await call('overview, no key', 'GET', '/v1/admin/overview', { expect: 401 });
  await call('overview, shopper token', 'GET', '/v1/admin/overview', { headers: as(alice), expect: 401 });
  await call('operator page', 'GET', '/admin', { headers: basic, expect: 200 });
  await call('operator page, bearer', 'GET', '/admin', { headers: admin, expect: 200 });
  await call('operator page, no key', 'GET', '/admin', { expect: 401 });
  await call('operator page, wrong password', 'GET', '/admin', { headers: { Authorization: `Basic ${Buffer.from('admin:nope').toString('base64')}` }, expect: 401 });
  await call('operator page script', 'GET', '/admin/app.js', { headers: basic, expect: 200 });
  await call('operator page style', 'GET', '/admin/app.css', { headers: basic, expect: 200 });
  await call('operator page file, no key', 'GET', '/admin/app.js', { expect: 401 });

  // Payment webhooks.
  const sw = (body, sig) => ({ headers: { 'Stripe-Signature': sig ?? signature(WHSEC, body) }, body });
  const unknownEvt = JSON.stringify({ id: `evt_oa_${tag}_1`, type: 'payment_intent.succeeded', data: { object: { id: `pi_unknown_${tag}`, object: 'payment_intent' } } });
  await call('stripe event, unknown intent', 'POST', '/webhooks/stripe', { ...sw(unknownEvt), expect: 200 });
  await call('stripe event, delivered again', 'POST', '/webhooks/stripe', { ...sw(unknownEvt), expect: 200 });
  const mob2Evt = JSON.stringify({ id: `evt_oa_${tag}_2`, type: 'payment_intent.canceled', data: { object: { id: mob2?.payment_intent, object: 'payment_intent', status: 'canceled', metadata: { order_id: mob2Id } } } });
  await call('stripe event, known intent', 'POST', '/webhooks/stripe', { ...sw(mob2Evt), expect: 200 });
  await call('stripe event, unsigned', 'POST', '/webhooks/stripe', { body: unknownEvt, expect: 400 });
  await call('stripe event, wrong signature', 'POST', '/webhooks/stripe', { ...sw(unknownEvt, signature('whsec_wrong', unknownEvt)), expect: 400 });
  await call('stripe event, stale signature', 'POST', '/webhooks/stripe', { ...sw(unknownEvt, signature(WHSEC, unknownEvt, Math.floor(Date.now() / 1000) - 3600)), expect: 400 });
  await call('stripe event, invalid JSON', 'POST', '/webhooks/stripe', { ...sw('{"id":'), expect: 400 });
  await call('stripe event, no type', 'POST', '/webhooks/stripe', { ...sw(JSON.stringify({ id: `evt_oa_${tag}_3`, data: { object: {} } })), expect: 400 });
  await call('stripe event, text/plain', 'POST', '/webhooks/stripe', { headers: { 'Content-Type': 'text/plain', 'Stripe-Signature': signature(WHSEC, unknownEvt) }, body: unknownEvt, expect: 415 });

  // Restock webhooks.
  const rs = (obj, sig) => {
    const body = typeof obj === 'string' ? obj : JSON.stringify(obj);
    return { headers: { 'Restock-Signature': sig ?? signature(RESTOCK_SECRET, body) }, body };
  };
  const restock = { event_id: `restock-${tag}-1`, item_id: b.id, quantity: 3 };
  await call('restock', 'POST', '/webhooks/restock', { ...rs(restock), expect: 200 });
  await call('restock, replayed', 'POST', '/webhooks/restock', { ...rs(restock), expect: 200 });
  await call('restock, event id reused', 'POST', '/webhooks/restock', { ...rs({ ...restock, quantity: 4 }), expect: 422 });
  await call('restock, unknown item', 'POST', '/webhooks/restock', { ...rs({ ...restock, event_id: `restock-${tag}-2`, item_id: uuid() }), expect: 404 });
  await call('restock, quantity 0', 'POST', '/webhooks/restock', { ...rs({ ...restock, event_id: `restock-${tag}-3`, quantity: 0 }), expect: 400 });
  await call('restock, unsigned', 'POST', '/webhooks/restock', { body: JSON.stringify(restock), expect: 400 });
  await call('restock, wrong signature', 'POST', '/webhooks/restock', { ...rs(restock, signature('wrong', JSON.stringify(restock))), expect: 400 });

  // Every operation reached.
  for (const [tpl, item] of Object.entries(spec.paths)) {
    for (const m of METHODS) {
      if (!item[m]) continue;
      const s = seen.get(`${m} ${tpl}`);
      const statuses = s ? [...s].join(' ') : '';
      if (!s) {
        results.failed++;
        console.log(`FAIL  coverage: no call reached ${m.toUpperCase()} ${tpl}`);
      } else {
        console.log(`      ${m.toUpperCase().padEnd(4)} ${tpl.padEnd(34)} ${statuses}`);
      }
    }
  }
}

main().then(
  () => {
    console.log(`openapi: ${results.passed} passed, ${results.failed} failed, ${results.skipped} skipped`);
    process.exit(results.failed ? 1 : 0);
  },
  (e) => {
    console.log(`openapi: ${e.stack || e}`);
    console.log(`openapi: ${results.passed} passed, ${results.failed + 1} failed, ${results.skipped} skipped`);
    process.exit(1);
  },
);
