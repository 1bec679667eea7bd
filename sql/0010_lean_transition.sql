-- co_transition with a short path for the common move. Most transitions
-- (every one of the server flow's second commit) cause no event and move no
-- stock: those now take three statements instead of five or more, and the
-- order row is checked and moved by one UPDATE. Every other move is made by
-- the function of sql/0003, kept under the name co_transition_general (same
-- contract and results).
ALTER FUNCTION co_transition(uuid, text, text[], text, boolean, boolean, text, text, text, text,
                             text, integer, text, integer, text, text, text)
    RENAME TO co_transition_general;

CREATE FUNCTION co_transition(p_order_id uuid, p_from text, p_path text[], p_reason text,
                              p_release boolean, p_take boolean,
                              p_payment_intent text, p_client_secret text,
                              p_failure_code text, p_decline_code text, p_compensate_to text,
                              p_lease_seconds integer, p_owner text,
                              p_response_status integer, p_response_body text,
                              p_event_id text DEFAULT NULL, p_event_type text DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql AS $$
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
    RETURN co_transition_general(p_order_id => p_order_id,
                                  p_from => p_from,
                                  p_path => p_path,
                                  p_reason => p_reason,
                                  p_release => p_release,
                                  p_take => p_take,
                                  p_payment_intent => p_payment_intent,
                                  p_client_secret => p_client_secret,
                                  p_failure_code => p_failure_code,
                                  p_decline_code => p_decline_code,
                                  p_compensate_to => p_compensate_to,
                                  p_lease_seconds => p_lease_seconds,
                                  p_owner => p_owner,
                                  p_response_status => p_response_status,
                                  p_response_body => p_response_body,
                                  p_event_id => p_event_id,
                                  p_event_type => p_event_type);
END
$$;
