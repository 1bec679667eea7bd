-- A provider event in one read: whether its id was recorded before, and the
-- order it concerns with everything the saga needs to decide (the columns of
-- the store's load_order). Most events are about an order the request path
-- has already settled (its own authorize and capture caused them): the saga
-- then answers from this one read-only statement, with no commit at all.
CREATE FUNCTION co_event_order(p_event_id text, p_order_id uuid, p_payment_intent text)
RETURNS TABLE (seen boolean, id uuid, user_id uuid, status text, mobile boolean,
               payment_method text, amount bigint, currency text, payment_intent text,
               client_secret text, failure_code text, decline_code text, compensate_to text,
               failure_detail text, expires_at text, expired boolean, stock_held boolean,
               answer_pending boolean)
LANGUAGE sql STABLE AS $$
    WITH e AS (
        SELECT EXISTS (SELECT 1 FROM payment_events x WHERE x.event_id = p_event_id) AS seen,
               coalesce(
                   (SELECT o.id FROM orders o
                     WHERE o.id = p_order_id
                       AND (o.payment_intent IS NULL OR p_payment_intent IS NULL
                            OR o.payment_intent = p_payment_intent)),
                   (SELECT o.id FROM orders o WHERE o.payment_intent = p_payment_intent))
                   AS order_id)
    SELECT e.seen, o.id, o.user_id, o.status, o.flow = 'mobile', o.payment_method, o.amount,
           o.currency, o.payment_intent, o.client_secret, o.failure_code, o.decline_code,
           o.compensate_to, o.failure_detail, co_iso(o.reservation_expires_at),
           coalesce(o.reservation_expires_at < now(), false), o.stock_held,
           (r.order_id IS NOT NULL AND r.response_status IS NULL)
      FROM e LEFT JOIN orders o ON o.id = e.order_id
             LEFT JOIN checkout_requests r ON r.order_id = o.id
$$;
COMMENT ON FUNCTION co_event_order(text, uuid, text) IS
  'Webhook dedup pre-check, order lookup and the order itself in one round trip; id is NULL for '
  'an intent we do not know. The dedup that counts is the payment_events insert made in the '
  'effect''s own transaction (co_transition, co_record_event).';

DROP FUNCTION co_event_lookup(text, uuid, text);
