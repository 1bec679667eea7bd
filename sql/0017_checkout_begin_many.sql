-- Group commit for the checkout's first commit. While one batch of checkouts
-- is in flight, the next ones gather in checkoutd (src/co_batch.c), and a free
-- slot runs them all with one call of co_checkout_begin_many: one statement,
-- one transaction, one commit, and set-wise writes (one INSERT of all the
-- orders, one of all their lines, one UPDATE per item row) instead of some
-- twenty statements per checkout. On a hot item that turns one row lock, one
-- WAL flush and one round of plpgsql per checkout into one per batch.
--
-- Each request is what co_checkout_begin takes, and each is answered as
-- co_checkout_begin would have answered it alone, in the row numbered by its
-- place in p_reqs (1-based); requests are served in that order, so the first
-- of two that want the last unit gets it. checkoutd batches only carts of one
-- line, and only one batch in flight holds a given item: the batch locks its
-- items in id order, one statement, so two batches never wait on each other
-- in a cycle; the keys are inserted in (user, key) order, so two batches with
-- keys in common take them in one order. Any error rolls back the whole
-- batch, and checkoutd runs each request alone.
--
-- Three cases get no row and are left to co_checkout_begin alone (checkoutd
-- runs each on its own thread once the batch has committed):
--
--   * an item in hot mode (stock in buckets, sql/0007): serving it here would
--     take a second lock out of id order while the batch holds its plain item
--     rows (a two-line checkout holding a bucket and waiting for a plain row
--     closes a cycle with it), and a batch would serialise what the buckets
--     exist to run at once;
--   * an item that does not exist: co_checkout_begin looks at the
--     Idempotency-Key first (a reused key with a bogus cart is 422 alone, so
--     it must not be 404 here);
--   * a mobile checkout under the unpaid-units cap, whose per-shopper lock
--     could make two batches wait on each other (checkoutd does not send
--     them; the function does not rely on it).
--
-- The hot-item rule counts a wait as the alone path does: when the batch
-- waited co_hot_rule().wait_ms or more for its item rows, each item it took
-- units from counts one.
CREATE FUNCTION co_checkout_begin_many(p_reqs jsonb)
RETURNS TABLE (n integer, outcome text, order_id uuid, response_status integer,
               response_body text, amount bigint, currency text, short_item uuid,
               expires_at text, retry_after integer)
LANGUAGE plpgsql AS $$
DECLARE
    -- The requests, in arrival order (index = n).
    r_item uuid[];
    r_qty integer[];
    r_user uuid[];
    r_key text[];
    r_hash text[];
    r_order uuid[];
    r_flow text[];
    r_pm text[];
    r_ttl integer[];
    r_lease integer[];
    r_owner text[];
    r_cap integer[];
    -- What becomes of each: 'plain' (served set-wise) or 'alone' (no row:
    -- for co_checkout_begin alone); then the plain ones' outcome.
    r_path text[];
    r_out text[];
    r_total bigint[];
    r_cur text[];
    -- The plain items, locked (in id order), and the units left in each.
    l_id uuid[];
    l_stock integer[];
    l_price bigint[];
    l_cur text[];
    l_left integer[];
    fresh uuid[];
    cnt integer;
    pos integer;
    rule record;
    t0 timestamptz;
    waited boolean;
    heat uuid[];
    x uuid;
    prev checkout_requests%ROWTYPE;
BEGIN
    SELECT array_agg((e.value #>> '{items,0,item_id}')::uuid ORDER BY e.k),
           array_agg((e.value #>> '{items,0,quantity}')::integer ORDER BY e.k),
           array_agg((e.value->>'user_id')::uuid ORDER BY e.k),
           array_agg(e.value->>'key' ORDER BY e.k), array_agg(e.value->>'hash' ORDER BY e.k),
           array_agg((e.value->>'order_id')::uuid ORDER BY e.k),
           array_agg(e.value->>'flow' ORDER BY e.k),
           array_agg(e.value->>'payment_method' ORDER BY e.k),
           array_agg((e.value->>'ttl_seconds')::integer ORDER BY e.k),
           array_agg((e.value->>'lease_seconds')::integer ORDER BY e.k),
           array_agg(e.value->>'owner' ORDER BY e.k),
           array_agg((e.value->>'max_unpaid_units')::integer ORDER BY e.k)
      INTO r_item, r_qty, r_user, r_key, r_hash, r_order, r_flow, r_pm, r_ttl, r_lease,
           r_owner, r_cap
      FROM jsonb_array_elements(p_reqs) WITH ORDINALITY AS e(value, k);
    cnt := coalesce(cardinality(r_item), 0);
    IF cnt = 0 THEN
        RETURN;
    END IF;

    -- The plain items, locked in id order (one statement: the rows are locked
    -- as the sort hands them up), their stock compared after the lock.
    rule := co_hot_rule();
    t0 := clock_timestamp();
    SELECT array_agg(i.id ORDER BY i.id), array_agg(i.stock ORDER BY i.id),
           array_agg(i.price ORDER BY i.id), array_agg(i.currency ORDER BY i.id)
      INTO l_id, l_stock, l_price, l_cur
      FROM (SELECT it.id, it.stock, it.price, it.currency FROM items it
             WHERE it.id = ANY (r_item) AND it.hot_buckets = 0
             ORDER BY it.id FOR NO KEY UPDATE) i;
    waited := clock_timestamp() - t0 >= make_interval(secs => rule.wait_ms / 1000.0);
    l_id := coalesce(l_id, '{}');
    l_left := l_stock;
    r_path := array_fill('plain'::text, ARRAY[cnt]);
    r_out := array_fill(NULL::text, ARRAY[cnt]);
    r_total := array_fill(NULL::bigint, ARRAY[cnt]);
    r_cur := array_fill(NULL::text, ARRAY[cnt]);
    FOR k IN 1 .. cnt LOOP
        pos := array_position(l_id, r_item[k]);
        IF pos IS NULL OR (r_flow[k] = 'mobile' AND r_cap[k] IS NOT NULL) THEN
            -- Not locked (in hot mode, or no such item), or under the
            -- unpaid-units cap: left to run alone.
            r_path[k] := 'alone';
        ELSE
            r_total[k] := l_price[pos] * r_qty[k];
            r_cur[k] := l_cur[pos];
        END IF;
    END LOOP;

    -- The keys of the plain ones, first come first: a key seen before (or
    -- twice in this batch) is answered from its first request.
    WITH ins AS (
        INSERT INTO checkout_requests (user_id, idempotency_key, request_hash, order_id)
            SELECT c.u, c.key, c.h, c.o
              FROM unnest(r_user, r_key, r_hash, r_order, r_path) WITH ORDINALITY
                   AS c(u, key, h, o, path, k)
             WHERE c.path = 'plain' ORDER BY c.u, c.key, c.k
            ON CONFLICT (user_id, idempotency_key) DO NOTHING
        RETURNING checkout_requests.order_id)
    SELECT coalesce(array_agg(ins.order_id), '{}') INTO fresh FROM ins;

    FOR k IN 1 .. cnt LOOP
        CONTINUE WHEN r_path[k] <> 'plain';
        IF NOT r_order[k] = ANY (fresh) THEN
            SELECT * INTO prev FROM checkout_requests c
             WHERE c.user_id = r_user[k] AND c.idempotency_key = r_key[k];
            r_order[k] := prev.order_id;
            IF prev.request_hash <> r_hash[k] THEN
                r_out[k] := 'reused';
            ELSIF prev.response_status IS NULL THEN
                r_out[k] := 'in_progress';
            ELSE
                r_out[k] := 'replay';
            END IF;
            CONTINUE;
        END IF;
        pos := array_position(l_id, r_item[k]);
        IF l_left[pos] >= r_qty[k] THEN
            l_left[pos] := l_left[pos] - r_qty[k];
            r_out[k] := 'reserved';
        ELSE
            r_out[k] := 'out_of_stock';
        END IF;
    END LOOP;

    -- The new orders, set-wise: the order, its history, its line; the stock
    -- and the ledger of the reserved ones.
    INSERT INTO orders (id, user_id, status, flow, payment_method, amount, currency, stock_held,
                        reservation_expires_at, lease_owner, lease_until, failure_code,
                        failure_detail)
        SELECT c.o, c.u, CASE c.out WHEN 'reserved' THEN 'reserved' ELSE 'failed' END, c.flow,
               c.pm, c.total, c.cur, c.out = 'reserved',
               CASE WHEN c.out = 'reserved' AND c.flow = 'mobile'
                    THEN now() + make_interval(secs => c.ttl) END,
               CASE WHEN c.out = 'reserved' THEN c.owner END,
               CASE WHEN c.out = 'reserved' THEN now() + make_interval(secs => c.lease) END,
               CASE WHEN c.out = 'out_of_stock' THEN 'out_of_stock' END,
               CASE WHEN c.out = 'out_of_stock' THEN c.item::text END
          FROM unnest(r_order, r_user, r_flow, r_pm, r_total, r_cur, r_ttl, r_lease, r_owner,
                      r_out, r_item)
               AS c(o, u, flow, pm, total, cur, ttl, lease, owner, out, item)
         WHERE c.out IN ('reserved', 'out_of_stock');
    INSERT INTO order_history (order_id, from_status, to_status, reason)
        SELECT c.o, h.from_status,
               CASE WHEN h.step = 1 THEN 'pending' WHEN c.out = 'reserved' THEN 'reserved'
                    ELSE 'failed' END,
               CASE WHEN h.step = 2 AND c.out = 'out_of_stock' THEN 'out_of_stock' END
          FROM unnest(r_order, r_out) WITH ORDINALITY AS c(o, out, k)
               CROSS JOIN (VALUES (1, NULL::text), (2, 'pending')) AS h(step, from_status)
         WHERE c.out IN ('reserved', 'out_of_stock')
         ORDER BY c.k, h.step;
    INSERT INTO order_lines (order_id, item_id, quantity, unit_price)
        SELECT c.o, c.item, c.q, c.total / c.q
          FROM unnest(r_order, r_item, r_qty, r_total, r_out) AS c(o, item, q, total, out)
         WHERE c.out IN ('reserved', 'out_of_stock');
    WITH taken AS (
        SELECT c.item, sum(c.q)::integer AS q
          FROM unnest(r_item, r_qty, r_out) AS c(item, q, out)
         WHERE c.out = 'reserved' GROUP BY c.item),
    u AS (
        UPDATE items i
           SET stock = i.stock - t.q,
               hot_waits = co_hot_waits_next(i.hot_waits, i.hot_window_start, waited,
                                             rule.window_s),
               hot_window_start = co_hot_window_next(i.hot_window_start, waited, rule.window_s)
          FROM taken t
         WHERE i.id = t.item
        RETURNING i.id, i.hot_waits)
    SELECT array_agg(u.id ORDER BY u.id) INTO heat
      FROM u WHERE waited AND rule.waits > 0 AND u.hot_waits >= rule.waits;
    INSERT INTO stock_ledger (item_id, delta, kind, order_id)
        SELECT c.item, -c.q, 'reserve', c.o
          FROM unnest(r_item, r_qty, r_order, r_out) WITH ORDINALITY AS c(item, q, o, out, k)
         WHERE c.out = 'reserved' ORDER BY c.k;
    FOREACH x IN ARRAY coalesce(heat, '{}') LOOP
        PERFORM co_hot_set(x, rule.buckets);
    END LOOP;

    RETURN QUERY
        SELECT c.k::integer, c.out, c.o,
               CASE WHEN c.out = 'replay' THEN (SELECT p.response_status FROM checkout_requests p
                                                 WHERE p.order_id = c.o) END,
               CASE WHEN c.out = 'replay' THEN (SELECT p.response_body FROM checkout_requests p
                                                 WHERE p.order_id = c.o) END,
               CASE WHEN c.out IN ('reserved', 'out_of_stock') THEN c.total END,
               CASE WHEN c.out IN ('reserved', 'out_of_stock') THEN c.cur END,
               CASE WHEN c.out = 'out_of_stock' THEN c.item END,
               CASE WHEN c.out = 'reserved' AND c.flow = 'mobile'
                    THEN co_iso(now() + make_interval(secs => c.ttl)) END,
               NULL::integer
          FROM unnest(r_order, r_out, r_total, r_cur, r_item, r_flow, r_ttl) WITH ORDINALITY
               AS c(o, out, total, cur, item, flow, ttl, k)
         WHERE c.out IS NOT NULL;

END
$$;

COMMENT ON FUNCTION co_checkout_begin_many(jsonb) IS
  'Group commit: the checkout''s first commit for each request of p_reqs (one-line carts of '
  'plain items) in one transaction, set-wise; row n answers request n as co_checkout_begin '
  'would; a request with no row (hot item, unknown item, under the unpaid-units cap) is for '
  'co_checkout_begin alone.';
