-- Abuse limits. A shopper could hold an item's whole stock in unpaid mobile
-- reservations, again and again: co_checkout_begin now takes the largest
-- number of units one shopper may hold unpaid (NULL: no limit) and refuses
-- past it with outcome 'limited' and retry_after (seconds). Same contract as
-- sql/0006 otherwise; the old signature is dropped so that no caller keeps
-- the unlimited one by accident.
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
    total bigint := 0;
    cur_stock integer;
    short uuid;
    expires timestamptz;
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
                            total, curs[1], short, NULL::text, NULL::integer;
        RETURN;
    END IF;
    UPDATE items i SET stock = i.stock - c.q
      FROM unnest(ids, qtys) AS c(id, q) WHERE i.id = c.id;
    INSERT INTO stock_ledger (item_id, delta, kind, order_id)
        SELECT c.id, -c.q, 'reserve', p_order_id FROM unnest(ids, qtys) AS c(id, q);
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
