-- The checkout's first commit with the item rows locked as late as possible.
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
CREATE OR REPLACE FUNCTION co_checkout_begin(p_user_id uuid, p_key text, p_hash text,
                                             p_order_id uuid, p_items jsonb, p_flow text,
                                             p_payment_method text, p_ttl_seconds integer,
                                             p_lease_seconds integer, p_owner text)
RETURNS TABLE (outcome text, order_id uuid, response_status integer, response_body text,
               amount bigint, currency text, short_item uuid, expires_at text)
LANGUAGE plpgsql AS $$
DECLARE
    prev checkout_requests%ROWTYPE;
    ids uuid[];
    qtys integer[];
    prices bigint[];
    curs text[];
    total bigint := 0;
    cur_stock integer;
    short uuid;
    expires timestamptz;
BEGIN
    INSERT INTO checkout_requests (user_id, idempotency_key, request_hash, order_id)
        VALUES (p_user_id, p_key, p_hash, p_order_id)
        ON CONFLICT (user_id, idempotency_key) DO NOTHING;
    IF NOT FOUND THEN
        SELECT * INTO prev FROM checkout_requests r
         WHERE r.user_id = p_user_id AND r.idempotency_key = p_key;
        IF prev.request_hash <> p_hash THEN
            RETURN QUERY SELECT 'reused', prev.order_id, NULL::integer, NULL::text,
                                NULL::bigint, NULL::text, NULL::uuid, NULL::text;
        ELSIF prev.response_status IS NULL THEN
            RETURN QUERY SELECT 'in_progress', prev.order_id, NULL::integer, NULL::text,
                                NULL::bigint, NULL::text, NULL::uuid, NULL::text;
        ELSE
            RETURN QUERY SELECT 'replay', prev.order_id, prev.response_status, prev.response_body,
                                NULL::bigint, NULL::text, NULL::uuid, NULL::text;
        END IF;
        RETURN;
    END IF;

    -- The cart, priced from an unlocked read, in item id order (the lock order).
    SELECT array_agg(c.item_id ORDER BY c.item_id), array_agg(c.quantity ORDER BY c.item_id),
           array_agg(i.price ORDER BY c.item_id), array_agg(i.currency ORDER BY c.item_id)
      INTO ids, qtys, prices, curs
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
    INSERT INTO orders (id, user_id, status, flow, payment_method, amount, currency, stock_held,
                        reservation_expires_at, lease_owner, lease_until)
        VALUES (p_order_id, p_user_id, 'reserved', p_flow, p_payment_method, total, curs[1], true,
                expires, p_owner, now() + make_interval(secs => p_lease_seconds));
    INSERT INTO order_history (order_id, from_status, to_status)
        VALUES (p_order_id, NULL, 'pending'), (p_order_id, 'pending', 'reserved');

    -- Now the item rows: locked in id order, compared after each lock (a
    -- comparison in the locking query's WHERE could skip a row on its old
    -- version), then all decremented or none.
    FOR k IN 1 .. cardinality(ids) LOOP
        SELECT i.stock INTO cur_stock FROM items i WHERE i.id = ids[k] FOR NO KEY UPDATE;
        IF short IS NULL AND cur_stock < qtys[k] THEN
            short := ids[k];
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
                            total, curs[1], short, NULL::text;
        RETURN;
    END IF;
    UPDATE items i SET stock = i.stock - c.q
      FROM unnest(ids, qtys) AS c(id, q) WHERE i.id = c.id;
    INSERT INTO stock_ledger (item_id, delta, kind, order_id)
        SELECT c.id, -c.q, 'reserve', p_order_id FROM unnest(ids, qtys) AS c(id, q);
    RETURN QUERY SELECT 'reserved', p_order_id, NULL::integer, NULL::text, total, curs[1],
                        NULL::uuid, co_iso(expires);
END
$$;
