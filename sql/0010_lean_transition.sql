-- co_transition with a short path for the common move. Most transitions
-- (every one of the server flow's second commit) cause no event and move no
-- stock: those now take three statements instead of five or more, and the
-- order row is checked and moved by one UPDATE. Everything else takes the
-- path of sql/0003 unchanged (same contract and results).
CREATE OR REPLACE FUNCTION co_transition(p_order_id uuid, p_from text, p_path text[], p_reason text,
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
    -- The common move (a step of the request path or of recovery: no event,
    -- no stock taken or given back) in three statements: the order row is
    -- moved by an UPDATE that checks its from-state, all history rows in one
    -- INSERT, the stored answer if any.
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
            SELECT p_order_id, coalesce(p_path[h.n - 1], p_from), h.hop, p_reason
              FROM unnest(p_path) WITH ORDINALITY AS h(hop, n)
             ORDER BY h.n;
        IF p_response_status IS NOT NULL THEN
            UPDATE checkout_requests SET response_status = p_response_status,
                                         response_body = p_response_body
             WHERE order_id = p_order_id AND response_status IS NULL;
        END IF;
        RETURN 'ok';
    END IF;
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
