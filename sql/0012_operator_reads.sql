-- Every hop of a transition with its own history reason.

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
