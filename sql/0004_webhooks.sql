-- Webhooks and the back-in-stock notifier: which order a provider event is
-- about, and the outbox worker's two calls (claim a batch, report a delivery).

-- A provider event, before anything is done about it: whether its id was
-- recorded before, and the order it concerns -- the order named by the
-- event's metadata (p_order_id) when it exists and does not belong to another
-- PaymentIntent, else the order whose PaymentIntent is p_payment_intent.
-- order_id is NULL for an intent we do not know.
CREATE FUNCTION co_event_lookup(p_event_id text, p_order_id uuid, p_payment_intent text)
RETURNS TABLE (seen boolean, order_id uuid)
LANGUAGE sql STABLE AS $$
    SELECT EXISTS (SELECT 1 FROM payment_events e WHERE e.event_id = p_event_id),
           coalesce(
               (SELECT o.id FROM orders o
                 WHERE o.id = p_order_id
                   AND (o.payment_intent IS NULL OR p_payment_intent IS NULL
                        OR o.payment_intent = p_payment_intent)),
               (SELECT o.id FROM orders o WHERE o.payment_intent = p_payment_intent))
$$;
COMMENT ON FUNCTION co_event_lookup(text, uuid, text) IS
  'Webhook dedup pre-check and order lookup in one round trip; the dedup that counts is the '
  'payment_events insert made in the effect''s own transaction (co_transition, co_record_event).';

-- The notifier's claim: up to p_limit due notifications, each leased for
-- p_lease_seconds by pushing next_attempt_at into the future and counting the
-- attempt, in one autocommit statement. SKIP LOCKED hands each row to one
-- caller; the lease keeps it away from every other caller while its HTTP call
-- runs, without holding a row lock across the network. A caller that dies
-- mid-delivery leaves the row to be retried once the lease lapses.
CREATE FUNCTION co_notify_claim(p_lease_seconds integer, p_limit integer)
RETURNS TABLE (id bigint, item_id uuid, user_id uuid, restock_event_id text, created_at text,
               attempts integer)
LANGUAGE sql AS $$
    UPDATE notification_outbox o
       SET attempts = o.attempts + 1,
           next_attempt_at = now() + make_interval(secs => p_lease_seconds)
     WHERE o.id IN (SELECT x.id FROM notification_outbox x
                     WHERE x.status = 'pending' AND x.next_attempt_at <= now()
                     ORDER BY x.id
                     LIMIT p_limit
                       FOR UPDATE SKIP LOCKED)
    RETURNING o.id, o.item_id, o.user_id, o.restock_event_id,
              to_char(o.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'), o.attempts
$$;

-- The outcome of one claimed attempt (p_attempts is the count the claim returned):
--   p_error NULL          delivered (whoever's attempt it was: delivered is delivered)
--   p_error not NULL      failed: dead once p_attempts reached p_max_attempts, else
--                         retried after p_backoff_ms * 2^(attempts-1), capped at 60 s
--   p_unclaim             the attempt was never made (shutdown, sink down): give the
--                         row back at once without counting it
-- A failure report for an attempt that is no longer the row's latest (its lease
-- lapsed and another worker claimed it) changes nothing. Returns the row's status
-- afterwards ('pending', 'delivered', 'dead'), or NULL when nothing matched.
CREATE FUNCTION co_notify_result(p_id bigint, p_attempts integer, p_error text,
                                 p_max_attempts integer, p_backoff_ms integer,
                                 p_unclaim boolean DEFAULT false)
RETURNS text
LANGUAGE sql AS $$
    UPDATE notification_outbox o
       SET status = CASE WHEN p_unclaim THEN 'pending'
                         WHEN p_error IS NULL THEN 'delivered'
                         WHEN p_attempts >= p_max_attempts THEN 'dead'
                         ELSE 'pending' END,
           attempts = CASE WHEN p_unclaim THEN o.attempts - 1 ELSE o.attempts END,
           delivered_at = CASE WHEN p_error IS NULL AND NOT p_unclaim THEN now()
                               ELSE o.delivered_at END,
           last_error = CASE WHEN p_unclaim THEN o.last_error ELSE left(p_error, 500) END,
           next_attempt_at = CASE
               WHEN p_unclaim THEN now()
               WHEN p_error IS NULL OR p_attempts >= p_max_attempts THEN o.next_attempt_at
               ELSE now() + make_interval(secs => least(
                        p_backoff_ms::double precision * power(2, least(p_attempts - 1, 30)),
                        60000) / 1000.0) END
     WHERE o.id = p_id AND o.status = 'pending'
       AND (o.attempts = p_attempts OR (p_error IS NULL AND NOT p_unclaim))
    RETURNING o.status
$$;
COMMENT ON FUNCTION co_notify_result(bigint, integer, text, integer, integer, boolean) IS
  'Marks one notification delivered, schedules its retry with exponential backoff, or '
  'dead-letters it after p_max_attempts attempts (last_error says why).';
