-- Reconciliation with the payment provider (states/reconcile.c): a pass lists
-- the provider's PaymentIntents created since a watermark (minus an overlap)
-- and the orders that wait on the provider, and repairs or reports where the
-- two disagree. Here: the watermark and the lease that lets one pass run at a
-- time, the log of what each pass found and did, and the reads and writes a
-- pass makes. Every function is one statement's transaction: no session lock
-- is taken (the server works behind pgbouncer's transaction pooling).

CREATE TABLE reconcile_state (
    one          boolean PRIMARY KEY DEFAULT true CHECK (one),
    watermark    bigint NOT NULL DEFAULT 0 CHECK (watermark >= 0),
    lease_owner  text,
    lease_until  timestamptz,
    last_run_at  timestamptz,
    CHECK ((lease_owner IS NULL) = (lease_until IS NULL))
);
INSERT INTO reconcile_state DEFAULT VALUES;
COMMENT ON TABLE reconcile_state IS
  'One row. watermark: Unix seconds; a pass lists the intents created since watermark minus its '
  'overlap, and moves the watermark to the time it started once its listing is complete. '
  'lease_owner/lease_until: the pass running now (one at a time, across every instance); a lease '
  'that lapsed (a crashed pass) is taken over by the next.';

CREATE TABLE reconcile_log (
    id              bigserial PRIMARY KEY,
    run_id          uuid NOT NULL,
    payment_intent  text,
    order_id        uuid,
    finding         text NOT NULL CHECK (finding ~ '^[a-z_]+$'),
    action          text NOT NULL CHECK (action IN ('cancel', 'refund', 'drive', 'report')),
    result          text NOT NULL,
    failed          boolean NOT NULL DEFAULT false,
    created_at      timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE reconcile_log IS
  'What reconciliation found and did, one row per finding per pass. order_id has no foreign key: '
  'an intent may name an order that does not exist. failed: the action could not be carried out '
  'now (the next pass tries again).';
CREATE INDEX reconcile_log_intent_idx ON reconcile_log (payment_intent, finding);
CREATE INDEX reconcile_log_order_idx ON reconcile_log (order_id);

-- Starts a pass for p_owner unless another owner holds a live lease. The
-- watermark row is the lock: two passes racing for it are serialised on the
-- row, and the second sees the first's lease.
CREATE FUNCTION co_reconcile_begin(p_owner text, p_lease_seconds integer,
                                   OUT acquired boolean, OUT run_id uuid,
                                   OUT watermark bigint, OUT started bigint, OUT holder text)
LANGUAGE plpgsql AS $$
BEGIN
    started := floor(extract(epoch FROM now()))::bigint;
    UPDATE reconcile_state s
       SET lease_owner = p_owner,
           lease_until = now() + make_interval(secs => p_lease_seconds)
     WHERE s.one AND (s.lease_until IS NULL OR s.lease_until < now() OR s.lease_owner = p_owner)
    RETURNING s.watermark INTO watermark;
    acquired := FOUND;
    IF acquired THEN
        run_id := gen_random_uuid();
    ELSE
        SELECT s.lease_owner, s.watermark INTO holder, watermark FROM reconcile_state s;
    END IF;
END
$$;

-- Ends p_owner's pass: the watermark moves to p_watermark (NULL: stays, the
-- listing was not complete) and the lease is dropped. False when the lease was
-- no longer p_owner's (it lapsed and another pass took it): nothing changed.
CREATE FUNCTION co_reconcile_end(p_owner text, p_watermark bigint) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE reconcile_state s
       SET watermark = greatest(s.watermark, coalesce(p_watermark, s.watermark)),
           lease_owner = NULL, lease_until = NULL, last_run_at = now()
     WHERE s.one AND s.lease_owner = p_owner;
    RETURN FOUND;
END
$$;

-- The order a PaymentIntent belongs to: the one whose payment_intent it is,
-- else the one its metadata names (p_hint). Columns as co_store_load_order
-- reads them, plus is_intents (the order's own intent), idle_seconds (since
-- its last move) and leased (a live lease: someone is driving it).
CREATE FUNCTION co_reconcile_order(p_hint uuid, p_intent text)
RETURNS TABLE (id uuid, user_id uuid, status text, mobile boolean, payment_method text,
               amount bigint, currency text, payment_intent text, client_secret text,
               failure_code text, decline_code text, compensate_to text, failure_detail text,
               expires_at text, expired boolean, stock_held boolean, answer_pending boolean,
               is_intents boolean, idle_seconds bigint, leased boolean)
LANGUAGE sql STABLE AS $$
    SELECT o.id, o.user_id, o.status, o.flow = 'mobile', o.payment_method, o.amount, o.currency,
           o.payment_intent, o.client_secret, o.failure_code, o.decline_code, o.compensate_to,
           o.failure_detail, co_iso(o.reservation_expires_at),
           coalesce(o.reservation_expires_at < now(), false), o.stock_held,
           (r.order_id IS NOT NULL AND r.response_status IS NULL),
           o.payment_intent IS NOT DISTINCT FROM p_intent,
           floor(extract(epoch FROM now() - o.updated_at))::bigint,
           coalesce(o.lease_until > now(), false)
      FROM orders o LEFT JOIN checkout_requests r ON r.order_id = o.id
     WHERE o.payment_intent = p_intent OR o.id = p_hint
     ORDER BY o.payment_intent IS NOT DISTINCT FROM p_intent DESC
     LIMIT 1
$$;

-- A page of the orders that wait on the provider with an intent to look at,
-- idle at least p_min_idle seconds, by id after p_after (NULL: from the first).
CREATE FUNCTION co_reconcile_waiting(p_min_idle integer, p_after uuid, p_limit integer)
RETURNS SETOF uuid
LANGUAGE sql STABLE AS $$
    SELECT o.id FROM orders o
     WHERE o.status IN ('reserved', 'awaiting_payment', 'authorized', 'captured', 'voiding',
                        'refunding')
       AND o.payment_intent IS NOT NULL
       AND o.updated_at < now() - make_interval(secs => p_min_idle)
       AND (p_after IS NULL OR o.id > p_after)
     ORDER BY o.id
     LIMIT p_limit
$$;

-- Takes an order in p_status for p_owner to drive, unless another holds a
-- live lease on it or it has moved: false then. A state nobody drives
-- (awaiting_payment) is taken without a lease; its next move sets one.
CREATE FUNCTION co_reconcile_claim(p_order_id uuid, p_status text, p_owner text,
                                   p_lease_seconds integer) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE orders o
       SET lease_owner = CASE WHEN p_status = 'awaiting_payment' THEN o.lease_owner
                              ELSE p_owner END,
           lease_until = CASE WHEN p_status = 'awaiting_payment' THEN o.lease_until
                              ELSE now() + make_interval(secs => p_lease_seconds) END
     WHERE o.id = p_order_id AND o.status = p_status
       AND (o.lease_until IS NULL OR o.lease_until < now() OR o.lease_owner = p_owner);
    RETURN FOUND;
END
$$;

-- Records a finding: the log row, and a row in the order's history (reason
-- 'reconcile: ...', from and to its current state) when there is an order.
-- A report already in the log for the same intent, order and finding is not
-- written to the history again: a pass every few minutes must not bury the
-- order's history under the same line.
CREATE FUNCTION co_reconcile_record(p_run_id uuid, p_intent text, p_order_id uuid,
                                    p_finding text, p_action text, p_result text,
                                    p_failed boolean) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    cur text;
    again boolean;
BEGIN
    again := p_action = 'report' AND EXISTS (
        SELECT 1 FROM reconcile_log l
         WHERE l.payment_intent IS NOT DISTINCT FROM p_intent
           AND l.order_id IS NOT DISTINCT FROM p_order_id
           AND l.finding = p_finding AND l.action = 'report');
    INSERT INTO reconcile_log (run_id, payment_intent, order_id, finding, action, result, failed)
        VALUES (p_run_id, p_intent, p_order_id, p_finding, p_action, p_result, p_failed);
    IF p_order_id IS NULL OR again THEN
        RETURN;
    END IF;
    SELECT o.status INTO cur FROM orders o WHERE o.id = p_order_id;
    IF cur IS NOT NULL THEN
        INSERT INTO order_history (order_id, from_status, to_status, reason)
            VALUES (p_order_id, cur, cur,
                    left('reconcile: ' || p_finding || ': ' || p_action || ' '
                         || coalesce(p_intent, '-') || ': ' || p_result, 300));
    END IF;
END
$$;
