-- GET /v1/admin/overview (the operators' page polls it every second or two): what
-- the shop is doing now, in one read. Orders come from the newest history rows
-- (order_history's primary key), outbox rows from theirs; the two event tables
-- are keyed by event id, so their newest rows need an index on the time.

CREATE INDEX payment_events_created_idx ON payment_events (created_at);
CREATE INDEX restock_events_created_idx ON restock_events (created_at);

-- p_orders orders with the latest activity (each as GET /v1/orders/{id} shows it:
-- lines and saga history), the live orders per status, the first p_items items by
-- sku with their free units, and the newest webhooks and notifications.
CREATE FUNCTION co_admin_overview(p_orders integer, p_items integer, p_events integer)
RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'object', 'admin_overview',
        'generated_at', to_char(clock_timestamp() AT TIME ZONE 'UTC',
                                'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
        'orders', (SELECT coalesce(jsonb_agg(co_order_json(r.order_id) ORDER BY r.last DESC), '[]')
                     FROM (SELECT h.order_id, max(h.id) AS last
                             FROM (SELECT order_id, id FROM order_history
                                    ORDER BY id DESC LIMIT p_orders * 16) h
                            GROUP BY h.order_id ORDER BY max(h.id) DESC LIMIT p_orders) r),
        'live_orders', (SELECT coalesce(jsonb_object_agg(c.status, c.n), '{}')
                          FROM (SELECT status, count(*) AS n FROM orders
                                 WHERE status IN ('pending', 'reserved', 'awaiting_payment',
                                                  'authorized', 'captured', 'voiding', 'refunding')
                                 GROUP BY status) c),
        'items', (SELECT coalesce(jsonb_agg(jsonb_build_object(
                      'id', i.id, 'sku', i.sku, 'name', i.name, 'price', i.price,
                      'currency', i.currency, 'stock_available', co_item_available(i.id))
                      ORDER BY i.sku), '[]')
                    FROM (SELECT id, sku, name, price, currency FROM items
                           ORDER BY sku LIMIT p_items) i),
        'payment_events', (SELECT coalesce(jsonb_agg(jsonb_build_object(
                               'event_id', e.event_id, 'type', e.type,
                               'payment_intent', e.payment_intent, 'order_id', e.order_id,
                               'outcome', e.outcome, 'created_at', co_iso(e.created_at))
                               ORDER BY e.created_at DESC), '[]')
                             FROM (SELECT * FROM payment_events
                                    ORDER BY created_at DESC LIMIT p_events) e),
        'restock_events', (SELECT coalesce(jsonb_agg(jsonb_build_object(
                               'event_id', e.event_id, 'item_id', e.item_id,
                               'quantity', e.quantity, 'became_available', e.became_available,
                               'created_at', co_iso(e.created_at))
                               ORDER BY e.created_at DESC), '[]')
                             FROM (SELECT * FROM restock_events
                                    ORDER BY created_at DESC LIMIT p_events) e),
        'outbox', jsonb_build_object(
            'pending', (SELECT count(*) FROM notification_outbox WHERE status = 'pending'),
            'recent', (SELECT coalesce(jsonb_agg(jsonb_build_object(
                           'id', n.id::text, 'item_id', n.item_id, 'user_id', n.user_id,
                           'status', n.status, 'attempts', n.attempts,
                           'last_error', n.last_error, 'created_at', co_iso(n.created_at),
                           'delivered_at', co_iso(n.delivered_at))
                           ORDER BY n.id DESC), '[]')
                         FROM (SELECT * FROM notification_outbox
                                ORDER BY id DESC LIMIT p_events) n)))
$$;
COMMENT ON FUNCTION co_admin_overview(integer, integer, integer) IS
  'The admin page''s one read (GET /v1/admin/overview); every part is bounded by an index.';
