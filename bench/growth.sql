-- make bench's growth row: a migrated database that has already taken
-- :orders checkouts, loaded in one go with INSERT ... SELECT generate_series
-- (psql -v orders=N -f bench/growth.sql; scripts/bench.sh then runs VACUUM
-- ANALYZE and a CHECKPOINT, as a long-lived database would have had).
--
-- Every past order is terminal and consistent with the schema (sql/0001,
-- 0003): 9 in 10 confirmed (holding their unit, captured), 1 in 10 failed
-- (card declined: reserved, then released). Each has what the server flow
-- writes for it: its line, its checkout_requests row with the stored answer,
-- its saga history, its stock_ledger rows and the provider's webhook events
-- (payment_events). They are spread over a past catalogue of 1,000 items whose
-- stock is what the ledger says, so stock_audit stays empty (bench.sh checks).
--
-- Loaded the way pg_restore does it: the primary, unique and foreign keys and
-- the indexes of the six tables are dropped, the rows inserted, then every
-- index rebuilt and every key added back from its own definition (read from
-- the catalogue first, so this file does not repeat the schema). Adding a
-- foreign key back checks every row against it, and a check constraint or NOT
-- NULL is never dropped: what is loaded passes the schema's constraints. At
-- the end the definitions are compared with those before, and the load fails
-- if anything differs. Half the time of inserting into the live indexes.
\set ON_ERROR_STOP on

SELECT count(co_create_item('HIST-' || g, 'Past item ' || g, 1999, 'usd', 1000000))
  FROM generate_series(1, 1000) AS g;

CREATE TEMP TABLE g_items AS
    SELECT substr(sku, 6)::integer AS k, id FROM items WHERE sku LIKE 'HIST-%';

-- Order n: its id, shopper, outcome, item and time (about 2.5 s apart, the
-- newest a minute ago). The ids and the other keys ascend with n, and every
-- table is loaded in n order, so that each index grows at its right edge (a
-- third of the time of random keys); the indexes come out as dense as a
-- CREATE INDEX would build them.
CREATE TEMP TABLE g_orders AS
    SELECT n, lpad(n::text, 8, '0') AS nn,
           ('00000000-0000-4000-8000-' || lpad(to_hex(n), 12, '0'))::uuid AS id,
           md5('bench-user-' || (n % 5000))::uuid AS user_id,
           n % 10 <> 0 AS ok,
           i.id AS item_id,
           now() - interval '1 minute' - (:orders - n) * interval '2.5 s' AS at
      FROM generate_series(1, :orders) AS n
      JOIN g_items i ON i.k = n % 1000 + 1;

SET maintenance_work_mem = '256MB';
BEGIN;

CREATE TEMP TABLE g_tables AS
    SELECT t::regclass AS t
      FROM unnest(ARRAY['orders', 'order_lines', 'checkout_requests', 'order_history',
                        'stock_ledger', 'payment_events']) AS t;
-- Keys on the tables, and foreign keys pointing at them; rank = the order to add
-- them back in (primary, unique, then foreign keys that need them).
CREATE TEMP TABLE g_keys AS
    SELECT c.conrelid::regclass AS tbl, c.conname AS name, pg_get_constraintdef(c.oid) AS def,
           CASE c.contype WHEN 'p' THEN 1 WHEN 'u' THEN 2 ELSE 3 END AS rank
      FROM pg_constraint c
     WHERE c.contype IN ('p', 'u', 'f')
       AND (c.conrelid IN (SELECT t FROM g_tables) OR c.confrelid IN (SELECT t FROM g_tables));
-- Indexes no key owns.
CREATE TEMP TABLE g_indexes AS
    SELECT i.indexrelid::regclass AS name, pg_get_indexdef(i.indexrelid) AS def
      FROM pg_index i
     WHERE i.indrelid IN (SELECT t FROM g_tables)
       AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid);
-- What the schema says, as text, to compare after.
CREATE TEMP VIEW g_schema AS
    SELECT string_agg(d, E'\n' ORDER BY d) AS defs FROM (
        SELECT c.conrelid::regclass || ' ' || c.conname || ' ' || pg_get_constraintdef(c.oid)
          FROM pg_constraint c WHERE c.conrelid IN (SELECT t FROM g_tables)
        UNION ALL
        SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i
         WHERE i.indrelid IN (SELECT t FROM g_tables)) AS s(d);
CREATE TEMP TABLE g_before AS SELECT defs FROM g_schema;

DO $$
DECLARE
    k record;
BEGIN
    FOR k IN SELECT * FROM g_keys ORDER BY rank DESC LOOP
        EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', k.tbl, k.name);
    END LOOP;
    FOR k IN SELECT * FROM g_indexes LOOP
        EXECUTE format('DROP INDEX %s', k.name);
    END LOOP;
END
$$;

INSERT INTO orders (id, user_id, status, flow, payment_method, amount, currency, stock_held,
                    payment_intent, failure_code, decline_code, created_at, updated_at)
    SELECT id, user_id, CASE WHEN ok THEN 'confirmed' ELSE 'failed' END, 'server',
           'pm_card_visa', 1999, 'usd', ok, 'pi_hist_' || nn,
           CASE WHEN ok THEN NULL ELSE 'card_declined' END,
           CASE WHEN ok THEN NULL ELSE 'insufficient_funds' END,
           at, at + interval '120 ms'
      FROM g_orders ORDER BY n;

INSERT INTO order_lines (order_id, item_id, quantity, unit_price)
    SELECT id, item_id, 1, 1999 FROM g_orders ORDER BY n;

INSERT INTO checkout_requests (user_id, idempotency_key, request_hash, order_id,
                               response_status, response_body, created_at)
    SELECT user_id, 'hist-' || nn, md5('body-' || n) || md5('hash-' || n), id,
           CASE WHEN ok THEN 201 ELSE 402 END,
           CASE WHEN ok
                THEN '{"order_id":"' || id || '","status":"confirmed","amount":1999,'
                     '"currency":"usd","payment_intent":"pi_hist_' || nn || '"}'
                ELSE '{"error":{"type":"card_error","code":"card_declined",'
                     '"decline_code":"insufficient_funds","order_id":"' || id || '"}}'
           END,
           at
      FROM g_orders ORDER BY n;

-- The saga's history, hop by hop, as the server flow writes it.
INSERT INTO order_history (order_id, from_status, to_status, reason, created_at)
    SELECT o.id, h.f, h.t, h.r, o.at + h.step * interval '30 ms'
      FROM g_orders o
      JOIN (VALUES (true, 0, NULL, 'pending', NULL),
                   (true, 1, 'pending', 'reserved', NULL),
                   (true, 2, 'reserved', 'authorized', 'captured'),
                   (true, 3, 'authorized', 'captured', 'captured'),
                   (true, 4, 'captured', 'confirmed', 'captured'),
                   (false, 0, NULL, 'pending', NULL),
                   (false, 1, 'pending', 'reserved', NULL),
                   (false, 2, 'reserved', 'failed', 'card_declined'))
           AS h(ok, step, f, t, r) ON h.ok = o.ok
     ORDER BY o.n, h.step;

-- Every order reserved its unit; the declined ones gave it back.
INSERT INTO stock_ledger (item_id, delta, kind, order_id, created_at)
    SELECT item_id, d.delta, d.kind, id, at + d.step * interval '30 ms'
      FROM g_orders o
      JOIN (VALUES (1, -1, 'reserve'), (2, 1, 'release')) AS d(step, delta, kind)
        ON d.step = 1 OR NOT o.ok
     ORDER BY o.n, d.step;

UPDATE items i SET stock = i.stock - s.held
  FROM (SELECT item_id, count(*) AS held FROM g_orders WHERE ok GROUP BY item_id) s
 WHERE i.id = s.item_id;

-- The provider's webhooks of each order, applied once each.
INSERT INTO payment_events (event_id, type, payment_intent, order_id, outcome, created_at)
    SELECT 'evt_hist_' || nn || '_' || e.step, e.type, 'pi_hist_' || nn, id,
           'ignored: order ' || CASE WHEN o.ok THEN 'confirmed' ELSE 'failed' END,
           at + interval '150 ms'
      FROM g_orders o
      JOIN (VALUES (true, 1, 'payment_intent.amount_capturable_updated'),
                   (true, 2, 'payment_intent.succeeded'),
                   (false, 1, 'payment_intent.payment_failed'))
           AS e(ok, step, type) ON e.ok = o.ok
     ORDER BY o.n, e.step;

DO $$
DECLARE
    k record;
BEGIN
    FOR k IN SELECT * FROM g_indexes LOOP
        EXECUTE k.def;
    END LOOP;
    FOR k IN SELECT * FROM g_keys ORDER BY rank LOOP
        EXECUTE format('ALTER TABLE %s ADD CONSTRAINT %I %s', k.tbl, k.name, k.def);
    END LOOP;
    IF (SELECT defs FROM g_schema) IS DISTINCT FROM (SELECT defs FROM g_before) THEN
        RAISE EXCEPTION 'growth.sql: the schema differs after the load';
    END IF;
END
$$;

COMMIT;
