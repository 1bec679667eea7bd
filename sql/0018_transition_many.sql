-- Group commit for the common move (sql/0012 co_transition: no event, no
-- stock taken or given back), as sql/0017 does for the first commit: the
-- moves that gather while one batch is in flight run as one statement, one
-- transaction, set-wise (one UPDATE of all the orders, one INSERT of all their
-- history, one UPDATE of their stored answers). Each move is answered as
-- co_transition answers it alone: 'ok', or 'moved' when its order was no
-- longer in its from-state (nothing written for it). A move's fields are
-- co_transition's parameters; row n answers the n-th move (1-based). Of two
-- moves of one order in a batch (checkoutd never sends them) the first is
-- made, the second answered 'moved'.

-- The moves of p_moves as rows; first: the first move of its order. ROWS: a
-- batch is a few dozen moves at most.
CREATE FUNCTION co_moves(p_moves jsonb)
RETURNS TABLE (k integer, order_id uuid, from_status text, path text[], reason text,
               reasons text[], payment_intent text, client_secret text, failure_code text,
               decline_code text, compensate_to text, lease_seconds integer, owner text,
               response_status integer, response_body text, first boolean)
LANGUAGE sql STABLE ROWS 16 AS $$
    SELECT e.k::integer, (e.v->>'order_id')::uuid, e.v->>'from',
           ARRAY(SELECT h.x FROM jsonb_array_elements_text(e.v->'path') WITH ORDINALITY
                                 AS h(x, i) ORDER BY h.i),
           e.v->>'reason',
           CASE WHEN jsonb_typeof(e.v->'reasons') = 'array'
                THEN ARRAY(SELECT h.x FROM jsonb_array_elements_text(e.v->'reasons')
                                    WITH ORDINALITY AS h(x, i) ORDER BY h.i) END,
           e.v->>'payment_intent', e.v->>'client_secret', e.v->>'failure_code',
           e.v->>'decline_code', e.v->>'compensate_to', (e.v->>'lease_seconds')::integer,
           e.v->>'owner', (e.v->>'response_status')::integer, e.v->>'response_body',
           row_number() OVER (PARTITION BY e.v->>'order_id' ORDER BY e.k) = 1
      FROM jsonb_array_elements(p_moves) WITH ORDINALITY AS e(v, k)
$$;

CREATE FUNCTION co_transition_many(p_moves jsonb)
RETURNS TABLE (n integer, result text)
LANGUAGE plpgsql AS $$
DECLARE
    ids uuid[];
    made uuid[];
BEGIN
    -- The rows are reached by id = ANY (ids): a join of the moves to orders
    -- may be planned as a hash of a scan of the whole table (the planner does
    -- not know a batch is small, nor, on a new table, that orders is large).
    SELECT array_agg(m.order_id) INTO ids FROM co_moves(p_moves) m;
    WITH u AS (
        UPDATE orders o
           SET status = m.path[cardinality(m.path)],
               payment_intent = coalesce(m.payment_intent, o.payment_intent),
               client_secret = coalesce(m.client_secret, o.client_secret),
               failure_code = coalesce(m.failure_code, o.failure_code),
               decline_code = coalesce(m.decline_code, o.decline_code),
               compensate_to = coalesce(m.compensate_to, o.compensate_to),
               lease_owner = CASE WHEN m.lease_seconds IS NULL THEN NULL ELSE m.owner END,
               lease_until = CASE WHEN m.lease_seconds IS NULL THEN NULL
                                  ELSE now() + make_interval(secs => m.lease_seconds) END,
               updated_at = now()
          FROM co_moves(p_moves) m
         WHERE o.id = ANY (ids) AND m.first AND o.id = m.order_id AND o.status = m.from_status
        RETURNING o.id)
    SELECT coalesce(array_agg(u.id), '{}') INTO made FROM u;
    IF cardinality(made) > 0 THEN
        INSERT INTO order_history (order_id, from_status, to_status, reason)
            SELECT m.order_id, coalesce(m.path[h.n - 1], m.from_status), h.hop,
                   coalesce(m.reasons[h.n], m.reason)
              FROM co_moves(p_moves) m, unnest(m.path) WITH ORDINALITY AS h(hop, n)
             WHERE m.first AND m.order_id = ANY (made)
             ORDER BY m.k, h.n;
        UPDATE checkout_requests c
           SET response_status = m.response_status, response_body = m.response_body
          FROM co_moves(p_moves) m
         WHERE c.order_id = ANY (made) AND m.first AND m.response_status IS NOT NULL
           AND c.order_id = m.order_id AND c.response_status IS NULL;
    END IF;
    RETURN QUERY
        SELECT m.k, CASE WHEN m.first AND m.order_id = ANY (made) THEN 'ok' ELSE 'moved' END
          FROM co_moves(p_moves) m;
END
$$;

COMMENT ON FUNCTION co_transition_many(jsonb) IS
  'Group commit: co_transition''s common move (no event, no stock) for each move of p_moves in '
  'one transaction, set-wise; row n answers move n: ok, or moved (not in its from-state).';
