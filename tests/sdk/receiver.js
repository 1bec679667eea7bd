'use strict';
// A webhook endpoint for the SDK test: keeps every delivery's raw body and
// Stripe-Signature header (verification happens in the test, with the SDK), and can
// be told to answer 500 to the next N deliveries so the mock's retries are exercised.
//
//   POST /webhook        a delivery from mock-stripe
//   GET  /_events        [{"body": "<raw>", "signature": "...", "at": ms}, ...]
//   POST /_fail          {"count": N}: fail the next N deliveries with 500
//
// Prints "receiver listening on http://127.0.0.1:PORT" once ready.
const http = require('node:http');

const events = [];
let failNext = 0;
let failed = 0;

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

const server = http.createServer(async (req, res) => {
  const body = await readBody(req);
  const reply = (status, obj) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(obj));
  };
  if (req.method === 'POST' && req.url === '/webhook') {
    if (failNext > 0) {
      failNext--;
      failed++;
      return reply(500, { error: 'failing on purpose' });
    }
    events.push({ body, signature: req.headers['stripe-signature'] || null, at: Date.now() });
    return reply(200, { received: true });
  }
  if (req.method === 'GET' && req.url === '/_events') return reply(200, { events, failed });
  if (req.method === 'POST' && req.url === '/_fail') {
    failNext = JSON.parse(body || '{}').count || 0;
    return reply(200, { failNext });
  }
  return reply(404, { error: 'not found' });
});

server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`receiver listening on http://127.0.0.1:${server.address().port}\n`);
});
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => server.close(() => process.exit(0)));
