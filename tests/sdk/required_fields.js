'use strict';
// The fields Stripe's OpenAPI spec marks required on the objects mock-stripe renders,
// with their JSON types, for the API version the official SDK pins (apiVersion of
// node_modules/stripe: 2024-06-20 for stripe 16.12.0).
//
// Source: the SDK's typings (node_modules/stripe/types/*.d.ts, "File generated from
// our OpenAPI spec"): stripe-node generates them from stripe/openapi's spec3.sdk.json of
// that version, declaring a property the schema lists in `required` without `?`, and
// adding `| null` where the schema says `nullable`. So "required" below is the schema's
// `required` list, and a type list holding "null" is a nullable field.
//
//   node required_fields.js > stripe_required.json    regenerate the committed file
//
// sdk_test.js checks that the committed stripe_required.json equals what this extracts
// from the installed SDK (so the file follows the pinned version), and checks real mock
// answers against it.
const fs = require('node:fs');
const path = require('node:path');

const TYPES = path.join(__dirname, 'node_modules', 'stripe', 'types');

// What is checked: an object name, the typings' file and interface (a path under the
// Stripe namespace), and nested objects by field path (checked when present and not
// null). "error" is the spec's api_errors (PaymentIntent.last_payment_error's type, the
// body of every error answer); "list" its list objects (lib.d.ts's ApiList is written by
// hand in the SDK, with the same four required fields as the spec's list schemas).
const OBJECTS = {
  payment_intent: {
    file: 'PaymentIntents.d.ts', iface: 'PaymentIntent',
    nested: ['amount_details', 'next_action', 'payment_method_options',
             'payment_method_options.card'],
  },
  charge: {
    file: 'Charges.d.ts', iface: 'Charge',
    nested: ['billing_details', 'outcome', 'payment_method_details',
             'payment_method_details.card', 'payment_method_details.card.checks'],
  },
  refund: { file: 'Refunds.d.ts', iface: 'Refund', nested: [] },
  event: { file: 'Events.d.ts', iface: 'EventBase', nested: ['data', 'request'] },
  list: { file: 'lib.d.ts', iface: 'ApiList', nested: [] },
  error: { file: 'PaymentIntents.d.ts', iface: 'PaymentIntent.LastPaymentError', nested: [] },
};

const read = (file) => fs.readFileSync(path.join(TYPES, file), 'utf8');

// The body of `interface name` (or `type name =` when alias) inside namespaces ns (each
// nesting 2 more spaces, from 4 under `namespace Stripe`); null when absent.
function block(text, ns, name, alias) {
  let from = 0;
  let to = text.length;
  let indent = 4;
  for (const n of ns) {
    const open = text.indexOf(`\n${' '.repeat(indent)}namespace ${n} {\n`, from);
    if (open < 0 || open > to) return null;
    const close = text.indexOf(`\n${' '.repeat(indent)}}\n`, open + 1);
    from = open;
    to = close < 0 ? to : close;
    indent += 2;
  }
  const pad = ' '.repeat(indent);
  const re = alias
    ? new RegExp(`\\n${pad}(?:export )?type ${name} =([^;]*);`, 'g')
    : new RegExp(`\\n${pad}(?:export )?interface ${name}(?:<[^>]*>)?(?: extends [^{]*)? \\{\\n`, 'g');
  re.lastIndex = from;
  const m = re.exec(text);
  if (!m || m.index > to) return null;
  if (alias) return m[1];
  const end = text.indexOf(`\n${pad}}\n`, m.index + 1);
  return { body: text.slice(m.index + m[0].length, end), indent: indent + 2 };
}

// Members of an interface body: [{name, optional, type}] (types may span lines).
function members(body, indent) {
  const out = [];
  const start = new RegExp(`^ {${indent}}(\\w+)(\\??): ?(.*)$`);
  let cur = null;
  for (const line of body.split('\n')) {
    const m = start.exec(line);
    if (m) {
      cur = { name: m[1], optional: m[2] === '?', type: m[3] };
      out.push(cur);
    } else if (cur && !cur.type.endsWith(';')) {
      cur.type += ' ' + line.trim();
    }
  }
  for (const x of out) x.type = x.type.replace(/;$/, '').trim();
  return out;
}

// Top-level alternatives of a type: "A | B<C | D> | null" -> ["A", "B<C | D>", "null"].
function alternatives(type) {
  const out = [];
  let depth = 0;
  let cur = '';
  for (const c of type) {
    if (c === '<' || c === '(' || c === '{') depth++;
    if (c === '>' || c === ')' || c === '}') depth--;
    if (c === '|' && depth === 0) {
      out.push(cur.trim());
      cur = '';
    } else {
      cur += c;
    }
  }
  out.push(cur.trim());
  return out.filter((s) => s !== '');
}

// Where a reference "A.B" used inside namespaces ctx points: [file text, ns, name], or
// null. TypeScript scoping: the innermost enclosing namespace first; "Stripe.X" is root.
function resolve(text, ctx, ref, alias) {
  const parts = ref.split('.');
  if (parts[0] === 'Stripe') {
    const ns = parts.slice(1, -1);
    const name = parts[parts.length - 1];
    for (const f of fs.readdirSync(TYPES).filter((x) => x.endsWith('.d.ts'))) {
      const t = read(f);
      if (block(t, ns, name, alias)) return [t, ns, name];
    }
    return null;
  }
  for (let i = ctx.length; i >= 0; i--) {
    const ns = ctx.slice(0, i).concat(parts.slice(0, -1));
    if (block(text, ns, parts[parts.length - 1], alias)) return [text, ns, parts[parts.length - 1]];
  }
  return null;
}

// The JSON types one alternative allows.
function jsonType(text, ctx, alt) {
  if (alt === 'null') return 'null';
  if (alt === 'string' || /^'.*'$/.test(alt)) return 'string';
  if (alt === 'number') return 'number';
  if (alt === 'boolean') return 'boolean';
  if (alt.startsWith('Array<') || alt.endsWith('[]')) return 'array';
  if (/^[A-Z]\w*(\.\w+)*$/.test(alt)) {
    const a = resolve(text, ctx, alt, true);
    if (a) {
      const body = block(a[0], a[1], a[2], true);
      const alts = alternatives(body);
      if (alts.every((x) => /^'.*'$/.test(x))) return 'string';
      return [...new Set(alts.map((x) => jsonType(a[0], a[1], x)))].join('|');
    }
    return 'object'; // an interface (Stripe.Metadata, Charge.Outcome, ApiList<T>, ...)
  }
  if (alt.startsWith('ApiList<') || alt.startsWith('{')) return 'object';
  throw new Error(`required_fields.js: no JSON type for '${alt}'`);
}

function typesOf(text, ctx, type) {
  const set = new Set();
  for (const alt of alternatives(type))
    for (const t of jsonType(text, ctx, alt).split('|')) set.add(t);
  return [...set].sort();
}

// {required: {field: [types]}, optional: [fields]} of the interface at ns/name in text.
function describe(text, ns, name) {
  const b = block(text, ns, name, false);
  if (!b) throw new Error(`required_fields.js: no interface ${ns.concat(name).join('.')}`);
  const required = {};
  const ms = members(b.body, b.indent);
  for (const m of ms) if (!m.optional) required[m.name] = typesOf(text, ns.concat(name), m.type);
  return { required, members: ms };
}

function extract() {
  const out = {
    source: 'Stripe OpenAPI spec (stripe/openapi spec3.sdk.json) as generated into the ' +
      'typings of the stripe npm package; regenerate with tests/sdk/required_fields.js',
    sdk_version: JSON.parse(fs.readFileSync(path.join(TYPES, '..', 'package.json'))).version,
    api_version: /ApiVersion = '([^']+)'/.exec(
      fs.readFileSync(path.join(TYPES, '..', 'cjs', 'apiVersion.js'), 'utf8'))[1],
    objects: {},
  };
  for (const [key, spec] of Object.entries(OBJECTS)) {
    const text = read(spec.file);
    const parts = spec.iface.split('.');
    const root = { text, ns: parts.slice(0, -1), name: parts[parts.length - 1] };
    const d = describe(root.text, root.ns, root.name);
    out.objects[key] = d.required;
    const where = { '': { text: root.text, ns: root.ns, name: root.name, members: d.members } };
    for (const p of spec.nested) {
      const i = p.lastIndexOf('.');
      const parent = where[i < 0 ? '' : p.slice(0, i)];
      const field = p.slice(i + 1);
      const m = parent.members.find((x) => x.name === field);
      if (!m) throw new Error(`required_fields.js: ${key}.${p}: no such field`);
      const ctx = parent.ns.concat(parent.name);
      const ref = alternatives(m.type).find((a) => a !== 'null' && /^[A-Z]/.test(a));
      const r = ref && resolve(parent.text, ctx, ref, false);
      if (!r) throw new Error(`required_fields.js: ${key}.${p}: not an interface (${m.type})`);
      const nd = describe(r[0], r[1], r[2]);
      out.objects[`${key}.${p}`] = nd.required;
      where[p] = { text: r[0], ns: r[1], name: r[2], members: nd.members };
    }
  }
  return out;
}

module.exports = { extract };

if (require.main === module) process.stdout.write(JSON.stringify(extract(), null, 2) + '\n');
