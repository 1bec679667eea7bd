-- The saga's Postgres side: each function is one round trip and one commit.
-- The C state machine (states/) decides which transition is legal; these make
-- a decided transition durable, with its history row(s), in one transaction.

CREATE FUNCTION co_iso(t timestamptz) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
$$;

-- Starts a checkout: records the Idempotency-Key, creates the order priced from
-- the catalogue and reserves its stock, all in one transaction.
-- outcome:
--   reserved      the order holds its stock (status reserved, leased to p_owner)
--   out_of_stock  the order is failed (short_item names the item); nothing is held
--   replay        the key was used before with this body: response_* is the first answer
--   in_progress   the key's first request has not been answered yet
--   reused        the key was used with another body
-- Raises CK400/CK404 for a bad cart; then nothing at all is written.
CREATE FUNCTION co_checkout_begin(p_user_id uuid, p_key text, p_hash text, p_order_id uuid,
                                  p_items jsonb, p_flow text, p_payment_method text,
                                  p_ttl_seconds integer, p_lease_seconds integer, p_owner text)
RETURNS TABLE (outcome text, order_id uuid, response_status integer, response_body text,
               amount bigint, currency text, short_item uuid, expires_at text)
LANGUAGE plpgsql AS $$
DECLARE
    prev checkout_requests%ROWTYPE;
    short uuid;
    o_amount bigint;
    o_currency text;
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

    SELECT c.amount, c.currency INTO o_amount, o_currency
      FROM co_create_order(p_order_id, p_user_id, p_items, p_flow, p_payment_method) c;
    short := co_take_stock(p_order_id);
    IF short IS NOT NULL THEN
        UPDATE orders SET status = 'failed', failure_code = 'out_of_stock',
                          failure_detail = short::text, updated_at = now()
         WHERE id = p_order_id;
        INSERT INTO order_history (order_id, from_status, to_status, reason)
            VALUES (p_order_id, 'pending', 'failed', 'out_of_stock');
        RETURN QUERY SELECT 'out_of_stock', p_order_id, NULL::integer, NULL::text,
                            o_amount, o_currency, short, NULL::text;
        RETURN;
    END IF;
    UPDATE orders
       SET status = 'reserved',
           reservation_expires_at = CASE WHEN p_flow = 'mobile'
                                         THEN now() + make_interval(secs => p_ttl_seconds) END,
           lease_owner = p_owner,
           lease_until = now() + make_interval(secs => p_lease_seconds),
           updated_at = now()
     WHERE id = p_order_id;
    INSERT INTO order_history (order_id, from_status, to_status) VALUES (p_order_id, 'pending', 'reserved');
    RETURN QUERY SELECT 'reserved', p_order_id, NULL::integer, NULL::text, o_amount, o_currency,
                        NULL::uuid, co_iso(o.reservation_expires_at) FROM orders o WHERE o.id = p_order_id;
END
$$;

-- Stores the first answer to a checkout (once: a later call changes nothing).
CREATE FUNCTION co_checkout_respond(p_order_id uuid, p_status integer, p_body text)
RETURNS boolean
LANGUAGE sql AS $$
    UPDATE checkout_requests SET response_status = p_status, response_body = p_body
     WHERE order_id = p_order_id AND response_status IS NULL
    RETURNING true
$$;

-- Makes one decided transition durable. Moves the order from p_from along
-- p_path (each hop gets a history row; the last is the new status), optionally
-- releasing its stock or taking it again, setting payment fields, the lease,
-- and the checkout's first answer -- all in one transaction.
-- When p_event_id is given (a provider webhook caused the move), the event is
-- recorded in payment_events in the same transaction, so it takes effect once.
-- Returns 'ok'; 'moved' (changing nothing) when the order is no longer in
-- p_from, because another worker or a webhook got there first; 'short' when
-- p_take could not take the stock again; 'duplicate' when p_event_id was
-- applied before (nothing changed in any of these cases). With p_take (a late
-- authorization moving an expired order back to authorized) the stock is
-- checked first under the item locks, and taken only after the order has
-- left 'expired' (an ended order may hold no stock).
CREATE FUNCTION co_transition(p_order_id uuid, p_from text, p_path text[], p_reason text,
                              p_release boolean, p_take boolean,
                              p_payment_intent text, p_client_secret text,
                              p_failure_code text, p_decline_code text, p_compensate_to text,
                              p_lease_seconds integer, p_owner text,
                              p_response_status integer, p_response_body text,
                              p_event_id text DEFAULT NULL, p_event_type text DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    cur text;
    prev text;
    hop text;
BEGIN
    SELECT status INTO cur FROM orders WHERE id = p_order_id FOR NO KEY UPDATE;
    IF cur IS DISTINCT FROM p_from THEN
        RETURN 'moved';
    END IF;
    IF p_take AND co_stock_short(p_order_id) IS NOT NULL THEN
        RETURN 'short';
    END IF;
    IF p_event_id IS NOT NULL THEN
        INSERT INTO payment_events (event_id, type, payment_intent, order_id, outcome)
            SELECT p_event_id, p_event_type, o.payment_intent, p_order_id, 'applied: ' || p_path[cardinality(p_path)]
              FROM orders o WHERE o.id = p_order_id
            ON CONFLICT (event_id) DO NOTHING;
        IF NOT FOUND THEN
            RETURN 'duplicate';
        END IF;
    END IF;
    IF p_release THEN
        PERFORM co_release_order(p_order_id);
    END IF;
    prev := p_from;
    FOREACH hop IN ARRAY p_path LOOP
        INSERT INTO order_history (order_id, from_status, to_status, reason)
            VALUES (p_order_id, prev, hop, p_reason);
        prev := hop;
    END LOOP;
    UPDATE orders
       SET status = prev,
           payment_intent = coalesce(p_payment_intent, payment_intent),
           client_secret = coalesce(p_client_secret, client_secret),
           failure_code = coalesce(p_failure_code, failure_code),
           decline_code = coalesce(p_decline_code, decline_code),
           compensate_to = coalesce(p_compensate_to, compensate_to),
           lease_owner = CASE WHEN p_lease_seconds IS NULL THEN NULL ELSE p_owner END,
           lease_until = CASE WHEN p_lease_seconds IS NULL THEN NULL
                              ELSE now() + make_interval(secs => p_lease_seconds) END,
           updated_at = now()
     WHERE id = p_order_id;
    IF p_take AND co_take_stock(p_order_id) IS NOT NULL THEN
        -- Cannot happen: co_stock_short saw enough under the locks we still hold.
        RAISE EXCEPTION 'stock of order % changed under its locks', p_order_id;
    END IF;
    IF p_response_status IS NOT NULL THEN
        UPDATE checkout_requests SET response_status = p_response_status,
                                     response_body = p_response_body
         WHERE order_id = p_order_id AND response_status IS NULL;
    END IF;
    RETURN 'ok';
END
$$;

-- Recovery: claims up to p_limit live sagas whose lease lapsed (or that never
-- had one), and unpaid reservations past their expiry, for p_owner. Several
-- servers can call this at once: SKIP LOCKED hands each order to one of them.
CREATE FUNCTION co_claim_stalled(p_owner text, p_lease_seconds integer, p_limit integer)
RETURNS SETOF uuid
LANGUAGE sql AS $$
    UPDATE orders o
       SET lease_owner = p_owner,
           lease_until = now() + make_interval(secs => p_lease_seconds),
           attempts = o.attempts + 1
     WHERE o.id IN (
        SELECT id FROM orders
         WHERE ((status IN ('reserved', 'authorized', 'captured', 'voiding', 'refunding')
                 AND (lease_until IS NULL OR lease_until < now()))
             OR (status = 'awaiting_payment' AND reservation_expires_at < now()
                 AND (lease_until IS NULL OR lease_until < now())))
         ORDER BY lease_until NULLS FIRST
         LIMIT p_limit
         FOR UPDATE SKIP LOCKED)
    RETURNING o.id
$$;

-- An item as the API shows it. VOLATILE so that it sees an item created
-- earlier in the same statement (POST /v1/admin/items).
CREATE FUNCTION co_item_json(p_item_id uuid) RETURNS jsonb
LANGUAGE sql VOLATILE AS $$
    SELECT jsonb_build_object('id', id, 'object', 'item', 'sku', sku, 'name', name,
                              'price', price, 'currency', currency,
                              'stock_available', co_item_available(id))
      FROM items WHERE id = p_item_id
$$;

-- An order as the API shows it: its lines, status and saga history.
CREATE FUNCTION co_order_json(p_order_id uuid) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'id', o.id, 'object', 'order', 'user_id', o.user_id, 'status', o.status,
        'flow', o.flow, 'amount', o.amount, 'currency', o.currency,
        'payment_intent', o.payment_intent, 'failure_code', o.failure_code,
        'decline_code', o.decline_code, 'stock_held', o.stock_held,
        'reservation_expires_at', co_iso(o.reservation_expires_at),
        'created_at', co_iso(o.created_at), 'updated_at', co_iso(o.updated_at),
        'lines', (SELECT coalesce(jsonb_agg(jsonb_build_object(
                      'item_id', l.item_id, 'quantity', l.quantity, 'unit_price', l.unit_price)
                      ORDER BY l.item_id), '[]') FROM order_lines l WHERE l.order_id = o.id),
        'history', (SELECT coalesce(jsonb_agg(jsonb_build_object(
                        'from', h.from_status, 'to', h.to_status, 'reason', h.reason,
                        'at', to_char(h.created_at AT TIME ZONE 'UTC',
                                      'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'))
                        ORDER BY h.id), '[]') FROM order_history h WHERE h.order_id = o.id))
    FROM orders o WHERE o.id = p_order_id
$$;

-- A Stripe-style page of orders, newest first: {"object":"list","data":[...],"has_more":bool}.
-- starting_after is an order id from the previous page.
CREATE FUNCTION co_orders_page(p_status text, p_limit integer, p_starting_after uuid)
RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
DECLARE
    after_created timestamptz;
    ids uuid[];
BEGIN
    IF p_starting_after IS NOT NULL THEN
        SELECT created_at INTO after_created FROM orders WHERE id = p_starting_after;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'no order %', p_starting_after USING ERRCODE = 'CK400', DETAIL = 'starting_after';
        END IF;
    END IF;
    SELECT array_agg(id ORDER BY created_at DESC, id DESC) INTO ids FROM (
        SELECT id, created_at FROM orders
         WHERE (p_status IS NULL OR status = p_status)
           AND (after_created IS NULL OR (created_at, id) < (after_created, p_starting_after))
         ORDER BY created_at DESC, id DESC
         LIMIT p_limit + 1) s;
    ids := coalesce(ids, '{}');
    RETURN jsonb_build_object(
        'object', 'list', 'url', '/v1/admin/orders',
        'has_more', cardinality(ids) > p_limit,
        'data', coalesce((SELECT jsonb_agg(co_order_json(x.id) ORDER BY x.n)
                            FROM unnest(ids[1:p_limit]) WITH ORDINALITY AS x(id, n)), '[]'));
END
$$;

-- Records a provider event that changed nothing (unknown intent, an order
-- already past it). Returns false when the event id was recorded before.
CREATE FUNCTION co_record_event(p_event_id text, p_type text, p_payment_intent text,
                                p_order_id uuid, p_outcome text)
RETURNS boolean
LANGUAGE sql AS $$
    WITH ins AS (
        INSERT INTO payment_events (event_id, type, payment_intent, order_id, outcome)
            VALUES (p_event_id, p_type, p_payment_intent, p_order_id, p_outcome)
            ON CONFLICT (event_id) DO NOTHING RETURNING 1)
    SELECT count(*) = 1 FROM ins
$$;
