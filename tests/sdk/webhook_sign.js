'use strict';
// Signs a webhook payload with the official stripe Node SDK, for tests/test_webhooks.c
// (which runs it through popen):
//
//   node webhook_sign.js sign SECRET [UNIX_TIME] < payload     prints the Stripe-Signature header
//   node webhook_sign.js verify SECRET HEADER < payload        exit 0 when the SDK accepts it
//
// The payload is read raw from stdin, byte for byte, as the server will receive it.
const fs = require('node:fs');
const stripe = require('stripe')('sk_test_unused');

const [mode, secret, arg] = process.argv.slice(2);
const payload = fs.readFileSync(0).toString('utf8');

if (mode === 'sign' && secret) {
  const opts = { payload, secret };
  if (arg) opts.timestamp = Number(arg);
  process.stdout.write(stripe.webhooks.generateTestHeaderString(opts) + '\n');
} else if (mode === 'verify' && secret && arg) {
  try {
    stripe.webhooks.constructEvent(payload, arg, secret);
  } catch (e) {
    process.stderr.write(`webhook_sign: ${e.message}\n`);
    process.exit(1);
  }
} else {
  process.stderr.write('usage: node webhook_sign.js sign SECRET [UNIX_TIME] < payload\n' +
                       '       node webhook_sign.js verify SECRET HEADER < payload\n');
  process.exit(2);
}
