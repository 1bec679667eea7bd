-- The checkout's first commit, in its current form: item rows locked as late
-- as possible, hot items served from their buckets, unpaid units capped.
-- A hot item's throughput is one over the time its row is locked, commit
-- included: before, co_checkout_begin locked the items first (through
-- co_create_order) and held them across a dozen statements. Now everything
-- that does not depend on the stock is written first -- the idempotency key,
-- the order (priced from an unlocked read: prices never change), its history
-- -- and the item rows are locked last, in id order, for the check, the
-- decrement, the ledger and the order lines (whose foreign-key checks must
-- come after our lock, or concurrent KEY SHARE locks on the hot row pile up
-- as multixacts). Same contract as before (sql/0003_saga.sql): one round
-- trip; all lines or none; CK400/CK404 for a bad cart with nothing written.
--
-- Hot items (sql/0007): a hot line takes its units from the item's buckets
-- (co_stock_lock / co_stock_apply); a plain line times its wait for the item
-- row and counts it (co_hot_rule), switching the item to hot mode when the
-- count is reached; locking stops at the first short item.
--
-- Abuse limits. A shopper could hold an item's whole stock in unpaid mobile
-- reservations, again and again: co_checkout_begin now takes the largest
-- number of units one shopper may hold unpaid (NULL: no limit) and refuses
-- past it with outcome 'limited' and retry_after (seconds). The old
-- signature is dropped so that no caller keeps the unlimited one by accident.
DROP FUNCTION co_checkout_begin(uuid, text, text, uuid, jsonb, text, text, integer, integer, text);

CREATE FUNCTION co_checkout_begin(p_user_id uuid, p_key text, p_hash text,
                                  p_order_id uuid, p_items jsonb, p_flow text,
                                  p_payment_method text, p_ttl_seconds integer,
                                  p_lease_seconds integer, p_owner text,
                                  p_max_unpaid_units integer DEFAULT NULL)
RETURNS TABLE (outcome text, order_id uuid, response_status integer, response_body text,
               amount bigint, currency text, short_item uuid, expires_at text,
               retry_after integer)
LANGUAGE plpgsql AS $$
DECLARE
    prev checkout_requests%ROWTYPE;
    ids uuid[];
    qtys integer[];
    prices bigint[];
    curs text[];
    hots boolean[];
    waited boolean[];
    total bigint := 0;
    cur_stock integer;
    cur_hot integer;
    short uuid;
    expires timestamptz;
    rule record;
    wait_iv interval;
    t0 timestamptz;
    p co_stock_plan;
    plans co_stock_plan[] := '{}';
    heat uuid[];
    x uuid;
    held bigint;
    wanted bigint;
    soonest timestamptz;
BEGIN
    INSERT INTO checkout_requests (user_id, idempotency_key, request_hash, order_id)
        VALUES (p_user_id, p_key, p_hash, p_order_id)
        ON CONFLICT (user_id, idempotency_key) DO NOTHING;
    IF NOT FOUND THEN
        SELECT * INTO prev FROM checkout_requests r
         WHERE r.user_id = p_user_id AND r.idempotency_key = p_key;
        IF prev.request_hash <> p_hash THEN
            RETURN QUERY SELECT 'reused', prev.order_id, NULL::integer, NULL::text,
                                NULL::bigint, NULL::text, NULL::uuid, NULL::text, NULL::integer;
        ELSIF prev.response_status IS NULL THEN
            RETURN QUERY SELECT 'in_progress', prev.order_id, NULL::integer, NULL::text,
                                NULL::bigint, NULL::text, NULL::uuid, NULL::text, NULL::integer;
        ELSE
            RETURN QUERY SELECT 'replay', prev.order_id, prev.response_status, prev.response_body,
                                NULL::bigint, NULL::text, NULL::uuid, NULL::text, NULL::integer;
        END IF;
        RETURN;
    END IF;

    -- A shopper holds at most p_max_unpaid_units units in unpaid (mobile)
    -- reservations: beyond that the checkout is refused with the seconds until
    -- the soonest of them lapses, and nothing is written (not even the key, so
    -- the same key works later). The shopper's checkouts are serialised on an
    -- advisory lock for the count to be exact; the server flow, which pays at
    -- once, is not limited.
    IF p_flow = 'mobile' AND p_max_unpaid_units IS NOT NULL THEN
        PERFORM pg_advisory_xact_lock(hashtextextended(p_user_id::text, 7));
        SELECT coalesce(sum(l.quantity), 0), min(o.reservation_expires_at) INTO held, soonest
          FROM orders o JOIN order_lines l ON l.order_id = o.id
         WHERE o.user_id = p_user_id AND o.flow = 'mobile' AND o.stock_held
           AND o.status IN ('reserved', 'awaiting_payment');
        SELECT sum(c.quantity) INTO wanted FROM co_cart_lines(p_items) c;
        IF held + wanted > p_max_unpaid_units THEN
            DELETE FROM checkout_requests r
             WHERE r.user_id = p_user_id AND r.idempotency_key = p_key;
            RETURN QUERY SELECT 'limited', NULL::uuid, NULL::integer, NULL::text, NULL::bigint,
                                NULL::text, NULL::uuid, NULL::text,
                                CASE WHEN soonest IS NOT NULL THEN
                                    greatest(1, ceil(extract(epoch FROM soonest - now())))
                                END::integer;
            RETURN;
        END IF;
    END IF;

    -- The cart, priced from an unlocked read, in item id order (the lock order).
    SELECT array_agg(c.item_id ORDER BY c.item_id), array_agg(c.quantity ORDER BY c.item_id),
           array_agg(i.price ORDER BY c.item_id), array_agg(i.currency ORDER BY c.item_id),
           array_agg(coalesce(i.hot_buckets > 0, false) ORDER BY c.item_id)
      INTO ids, qtys, prices, curs, hots
      FROM co_cart_lines(p_items) c LEFT JOIN items i ON i.id = c.item_id;
    FOR k IN 1 .. cardinality(ids) LOOP
        IF prices[k] IS NULL THEN
            RAISE EXCEPTION 'item % not found', ids[k] USING ERRCODE = 'CK404', DETAIL = ids[k]::text;
        END IF;
        IF curs[k] <> curs[1] THEN
            RAISE EXCEPTION 'items are priced in different currencies'
                USING ERRCODE = 'CK400', DETAIL = 'items';
        END IF;
        total := total + prices[k] * qtys[k];
    END LOOP;
    IF p_flow = 'mobile' THEN
        expires := now() + make_interval(secs => p_ttl_seconds);
    END IF;
    rule := co_hot_rule();
    wait_iv := make_interval(secs => rule.wait_ms / 1000.0);
    waited := array_fill(false, ARRAY[cardinality(ids)]);
    INSERT INTO orders (id, user_id, status, flow, payment_method, amount, currency, stock_held,
                        reservation_expires_at, lease_owner, lease_until)
        VALUES (p_order_id, p_user_id, 'reserved', p_flow, p_payment_method, total, curs[1], true,
                expires, p_owner, now() + make_interval(secs => p_lease_seconds));
    INSERT INTO order_history (order_id, from_status, to_status)
        VALUES (p_order_id, NULL, 'pending'), (p_order_id, 'pending', 'reserved');

    -- Now the items: locked in id order, compared after each lock (a
    -- comparison in the locking query's WHERE could skip a row on its old
    -- version), then all taken or none. A plain item's row is locked here,
    -- its wait timed; a hot item's buckets by co_stock_lock.
    FOR k IN 1 .. cardinality(ids) LOOP
        IF NOT hots[k] THEN
            t0 := clock_timestamp();
            SELECT i.stock, i.hot_buckets INTO cur_stock, cur_hot
              FROM items i WHERE i.id = ids[k] FOR NO KEY UPDATE;
            waited[k] := clock_timestamp() - t0 >= wait_iv;
            IF cur_hot > 0 THEN
                hots[k] := true; -- switched on while we waited; we hold its row
                p := co_stock_lock(ids[k], qtys[k], true);
            ELSIF cur_stock < qtys[k] THEN
                short := ids[k];
                EXIT;
            END IF;
        ELSE
            p := co_stock_lock(ids[k], qtys[k], false, rule.wait_ms);
        END IF;
        IF hots[k] THEN
            IF p.short THEN
                short := ids[k];
                EXIT;
            END IF;
            plans := plans || p;
        END IF;
    END LOOP;
    INSERT INTO order_lines (order_id, item_id, quantity, unit_price)
        SELECT p_order_id, c.id, c.q, c.p FROM unnest(ids, qtys, prices) AS c(id, q, p);
    IF short IS NOT NULL THEN
        UPDATE orders SET status = 'failed', stock_held = false, failure_code = 'out_of_stock',
                          failure_detail = short::text, reservation_expires_at = NULL,
                          lease_owner = NULL, lease_until = NULL
         WHERE id = p_order_id;
        UPDATE order_history SET to_status = 'failed', reason = 'out_of_stock'
         WHERE order_history.order_id = p_order_id AND to_status = 'reserved';
        RETURN QUERY SELECT 'out_of_stock', p_order_id, NULL::integer, NULL::text,
                            total, curs[1], short, NULL::text, NULL::integer;
        RETURN;
    END IF;
    WITH u AS (
        UPDATE items i
           SET stock = i.stock - c.q,
               hot_waits = co_hot_waits_next(i.hot_waits, i.hot_window_start, c.w, rule.window_s),
               hot_window_start = co_hot_window_next(i.hot_window_start, c.w, rule.window_s)
          FROM unnest(ids, qtys, waited, hots) AS c(id, q, w, h)
         WHERE i.id = c.id AND NOT c.h
        RETURNING i.id, i.hot_waits, c.w)
    SELECT array_agg(u.id ORDER BY u.id) INTO heat
      FROM u WHERE u.w AND rule.waits > 0 AND u.hot_waits >= rule.waits;
    FOREACH p IN ARRAY plans LOOP
        PERFORM co_stock_apply(p);
    END LOOP;
    INSERT INTO stock_ledger (item_id, delta, kind, order_id)
        SELECT c.id, -c.q, 'reserve', p_order_id FROM unnest(ids, qtys) AS c(id, q);
    -- The rule's count is reached: this reservation switches the item on
    -- (we hold its row; it has no buckets yet, so nobody else waits on them).
    FOREACH x IN ARRAY coalesce(heat, '{}') LOOP
        PERFORM co_hot_set(x, rule.buckets);
    END LOOP;
    RETURN QUERY SELECT 'reserved', p_order_id, NULL::integer, NULL::text, total, curs[1],
                        NULL::uuid, co_iso(expires), NULL::integer;
END
$$;

COMMENT ON FUNCTION co_checkout_begin(uuid, text, text, uuid, jsonb, text, text, integer, integer,
                                      text, integer) IS
  'The checkout''s first commit: idempotency key, order and reservation in one round trip, item '
  'rows locked last; p_max_unpaid_units caps a shopper''s unpaid mobile reservations.';

-- A restock event id is one restock: the same id with another item or
-- quantity is a client bug or an attack, not a replay. co_restock answers a
-- replay with applied = false; this says what the first one was.
CREATE FUNCTION co_restock_event(p_event_id text)
RETURNS TABLE (item_id uuid, quantity integer)
LANGUAGE sql STABLE AS $$
    SELECT e.item_id, e.quantity FROM restock_events e WHERE e.event_id = p_event_id
$$;
