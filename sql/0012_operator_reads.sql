-- Operator tools and list reads: every hop of a transition with its own
-- history reason; one order's lease claimed for POST /v1/admin/orders/{id}/drive;
-- pages of the catalogue, of a shopper's orders and of all orders (filters by
-- status, age and lease), each a keyset walk of an index, never a scan.

-- ------------------------------------------------- history reasons per hop
-- co_transition gains p_reasons: the reason of each hop of p_path (NULL
-- entries, or no array, take p_reason). Before, every hop of a multi-hop move
-- carried the last hop's reason (reserved -> authorized said "captured").
DROP FUNCTION co_transition(uuid, text, text[], text, boolean, boolean, text, text, text, text,
                            text, integer, text, integer, text, text, text);

CREATE FUNCTION co_transition(p_order_id uuid, p_from text, p_path text[], p_reason text,
                              p_release boolean, p_take boolean,
                              p_payment_intent text, p_client_secret text,
                              p_failure_code text, p_decline_code text, p_compensate_to text,
                              p_lease_seconds integer, p_owner text,
                              p_response_status integer, p_response_body text,
                              p_event_id text DEFAULT NULL, p_event_type text DEFAULT NULL,
                              p_reasons text[] DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    result text;
BEGIN
    -- The common move (no event, no stock taken or given back): three
    -- statements, as in sql/0010.
    IF p_event_id IS NULL AND NOT p_take AND NOT p_release THEN
        UPDATE orders
           SET status = p_path[cardinality(p_path)],
               payment_intent = coalesce(p_payment_intent, payment_intent),
               client_secret = coalesce(p_client_secret, client_secret),
               failure_code = coalesce(p_failure_code, failure_code),
               decline_code = coalesce(p_decline_code, decline_code),
               compensate_to = coalesce(p_compensate_to, compensate_to),
               lease_owner = CASE WHEN p_lease_seconds IS NULL THEN NULL ELSE p_owner END,
               lease_until = CASE WHEN p_lease_seconds IS NULL THEN NULL
                                  ELSE now() + make_interval(secs => p_lease_seconds) END,
               updated_at = now()
         WHERE id = p_order_id AND status = p_from;
        IF NOT FOUND THEN
            RETURN 'moved';
        END IF;
        INSERT INTO order_history (order_id, from_status, to_status, reason)
            SELECT p_order_id, coalesce(p_path[h.n - 1], p_from), h.hop,
                   coalesce(p_reasons[h.n], p_reason)
              FROM unnest(p_path) WITH ORDINALITY AS h(hop, n)
             ORDER BY h.n;
        IF p_response_status IS NOT NULL THEN
            UPDATE checkout_requests SET response_status = p_response_status,
                                         response_body = p_response_body
             WHERE order_id = p_order_id AND response_status IS NULL;
        END IF;
        RETURN 'ok';
    END IF;
    result := co_transition_general(p_order_id => p_order_id, p_from => p_from,
                                    p_path => p_path, p_reason => p_reason,
                                    p_release => p_release, p_take => p_take,
                                    p_payment_intent => p_payment_intent,
                                    p_client_secret => p_client_secret,
                                    p_failure_code => p_failure_code,
                                    p_decline_code => p_decline_code,
                                    p_compensate_to => p_compensate_to,
                                    p_lease_seconds => p_lease_seconds, p_owner => p_owner,
                                    p_response_status => p_response_status,
                                    p_response_body => p_response_body,
                                    p_event_id => p_event_id, p_event_type => p_event_type);
    -- The general move wrote every hop with p_reason. Its rows are the order's
    -- last cardinality(p_path) history rows: it still holds the order's row
    -- lock, so nobody else wrote one since. Rather than a third copy of its body.
    IF result = 'ok' AND p_reasons IS NOT NULL THEN
        UPDATE order_history h SET reason = coalesce(p_reasons[x.n], p_reason)
          FROM (SELECT t.id, row_number() OVER (ORDER BY t.id) AS n
                  FROM (SELECT id FROM order_history WHERE order_id = p_order_id
                         ORDER BY id DESC LIMIT cardinality(p_path)) t) x
         WHERE h.id = x.id AND h.reason IS DISTINCT FROM coalesce(p_reasons[x.n], p_reason);
    END IF;
    RETURN result;
END
$$;

-- ------------------------------------------------- one order driven now
-- Leases one live order to p_owner for POST /v1/admin/orders/{id}/drive, as
-- co_claim_stalled would. 'claimed'; 'held' when another owner's lease has not
-- lapsed (nothing changed); 'idle' when there is nothing to drive (ended,
-- pending, or an unpaid reservation that has not expired); 'none' for no order.
CREATE FUNCTION co_claim_order(p_order_id uuid, p_owner text, p_lease_seconds integer)
RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    o orders%ROWTYPE;
BEGIN
    SELECT * INTO o FROM orders WHERE id = p_order_id FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RETURN 'none';
    END IF;
    IF o.status NOT IN ('reserved', 'authorized', 'captured', 'voiding', 'refunding',
                        'awaiting_payment')
       OR (o.status = 'awaiting_payment' AND NOT coalesce(o.reservation_expires_at < now(), false))
    THEN
        RETURN 'idle';
    END IF;
    IF o.lease_until >= now() AND o.lease_owner IS DISTINCT FROM p_owner THEN
        RETURN 'held';
    END IF;
    UPDATE orders
       SET lease_owner = p_owner,
           lease_until = now() + make_interval(secs => p_lease_seconds),
           attempts = attempts + 1
     WHERE id = p_order_id;
    RETURN 'claimed';
END
$$;

-- ------------------------------------------------- pages
-- The admin order: the order as co_order_json shows it, plus its lease.
CREATE FUNCTION co_admin_order_json(p_order_id uuid) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT co_order_json(o.id) || jsonb_build_object('lease_owner', o.lease_owner,
                                                     'lease_expires_at', co_iso(o.lease_until))
      FROM orders o WHERE o.id = p_order_id
$$;

-- The index a page of orders walks: per status, newest first. Replaces
-- orders_status_idx (status, id), which served equality on status alone and
-- this one serves as well; a shopper's orders likewise (orders_user_idx).
-- Same number of indexes on orders, so a transition writes no more entries.
CREATE INDEX orders_status_created_idx ON orders (status, created_at, id);
DROP INDEX orders_status_idx;
CREATE INDEX orders_user_created_idx ON orders (user_id, created_at, id);
DROP INDEX orders_user_idx;

-- A Stripe-style page of the catalogue by sku: {"object":"list","url",
-- "has_more","data":[item...]}; starting_after is an item id (CK400
-- starting_after when there is none). Walks items_sku_key.
CREATE FUNCTION co_items_page(p_limit integer, p_starting_after uuid)
RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
DECLARE
    after_sku text := '';  -- every sku is longer: sorts before them all
    ids uuid[];
BEGIN
    IF p_starting_after IS NOT NULL THEN
        SELECT sku INTO after_sku FROM items WHERE id = p_starting_after;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'no item %', p_starting_after
                USING ERRCODE = 'CK400', DETAIL = 'starting_after';
        END IF;
    END IF;
    SELECT array_agg(id ORDER BY sku) INTO ids
      FROM (SELECT id, sku FROM items WHERE sku > after_sku ORDER BY sku LIMIT p_limit + 1) s;
    ids := coalesce(ids, '{}');
    RETURN jsonb_build_object(
        'object', 'list', 'url', '/v1/items',
        'has_more', cardinality(ids) > p_limit,
        'data', coalesce((SELECT jsonb_agg(co_item_json(x.id) ORDER BY x.n)
                            FROM unnest(ids[1:p_limit]) WITH ORDINALITY AS x(id, n)), '[]'));
END
$$;

-- A shopper's orders, newest first, as GET /v1/orders/{id} shows each.
-- starting_after must be one of the shopper's own orders (CK400 otherwise:
-- another's is as unknown as a made-up id).
CREATE FUNCTION co_user_orders_page(p_user_id uuid, p_limit integer, p_starting_after uuid)
RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
DECLARE
    after_created timestamptz := 'infinity';
    after_id uuid := 'ffffffff-ffff-ffff-ffff-ffffffffffff';
    ids uuid[];
BEGIN
    IF p_starting_after IS NOT NULL THEN
        SELECT created_at, id INTO after_created, after_id FROM orders
         WHERE id = p_starting_after AND user_id = p_user_id;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'no order %', p_starting_after
                USING ERRCODE = 'CK400', DETAIL = 'starting_after';
        END IF;
    END IF;
    SELECT array_agg(id ORDER BY created_at DESC, id DESC) INTO ids
      FROM (SELECT id, created_at FROM orders
             WHERE user_id = p_user_id AND (created_at, id) < (after_created, after_id)
             ORDER BY created_at DESC, id DESC LIMIT p_limit + 1) s;
    ids := coalesce(ids, '{}');
    RETURN jsonb_build_object(
        'object', 'list', 'url', '/v1/orders',
        'has_more', cardinality(ids) > p_limit,
        'data', coalesce((SELECT jsonb_agg(co_order_json(x.id) ORDER BY x.n)
                            FROM unnest(ids[1:p_limit]) WITH ORDINALITY AS x(id, n)), '[]'));
END
$$;

-- Replaced by co_admin_orders_page below (filters, leases), its only caller gone.
DROP FUNCTION co_orders_page(text, integer, uuid);

-- Every order, newest first, with the operator's filters: p_statuses (NULL:
-- every status), created before p_created_before, lease 'held' (lease_until
-- not passed), 'lapsed' (passed) or 'none'. Each status is walked on
-- orders_status_created_idx from the cursor down and at most p_limit + 1 rows
-- are read from each before the merge, so a page costs a dozen short index
-- walks however many orders there are. (The lease filter is checked on those
-- rows: a page asking for a rare lease in a common status walks further.)
CREATE FUNCTION co_admin_orders_page(p_statuses text[], p_created_before timestamptz,
                                     p_lease text, p_limit integer, p_starting_after uuid)
RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
DECLARE
    after_created timestamptz := 'infinity';
    after_id uuid := 'ffffffff-ffff-ffff-ffff-ffffffffffff';
    ids uuid[];
BEGIN
    IF p_starting_after IS NOT NULL THEN
        SELECT created_at, id INTO after_created, after_id FROM orders WHERE id = p_starting_after;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'no order %', p_starting_after
                USING ERRCODE = 'CK400', DETAIL = 'starting_after';
        END IF;
    END IF;
    IF p_created_before IS NOT NULL AND p_created_before <= after_created THEN
        -- Strictly before p_created_before: the cursor's row order, with the
        -- highest uuid standing for "any order created then".
        after_created := p_created_before;
        after_id := '00000000-0000-0000-0000-000000000000';
    END IF;
    SELECT array_agg(p.id ORDER BY p.created_at DESC, p.id DESC) INTO ids
      FROM (SELECT o.id, o.created_at
              FROM unnest(coalesce(p_statuses,
                                   ARRAY['pending', 'reserved', 'awaiting_payment', 'authorized',
                                         'captured', 'confirmed', 'voiding', 'refunding',
                                         'failed', 'expired', 'cancelled', 'refunded'])) AS st(s)
              CROSS JOIN LATERAL (
                  SELECT id, created_at FROM orders
                   WHERE status = st.s AND (created_at, id) < (after_created, after_id)
                     AND (p_lease IS NULL
                          OR (p_lease = 'held' AND lease_until >= now())
                          OR (p_lease = 'lapsed' AND lease_until < now())
                          OR (p_lease = 'none' AND lease_until IS NULL))
                   ORDER BY created_at DESC, id DESC LIMIT p_limit + 1) o
             ORDER BY o.created_at DESC, o.id DESC LIMIT p_limit + 1) p;
    ids := coalesce(ids, '{}');
    RETURN jsonb_build_object(
        'object', 'list', 'url', '/v1/admin/orders',
        'has_more', cardinality(ids) > p_limit,
        'data', coalesce((SELECT jsonb_agg(co_admin_order_json(x.id) ORDER BY x.n)
                            FROM unnest(ids[1:p_limit]) WITH ORDINALITY AS x(id, n)), '[]'));
END
$$;
