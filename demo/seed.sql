-- ERPGo demo data for the real ERPGo schema (schema.sql), loaded into a fresh database.
--
-- Realistic but small, and deliberately broken in a few places so the runbooks have something
-- to find. Every planted fault is marked with a "-- FAULT:" comment; demo/README.md lists them
-- with the query that finds each one. Every fault is one the real schema's constraints allow:
-- check_total_calculation makes "a total that does not add up" impossible, so the order totals
-- fault is a subtotal that no longer matches the order's items, and the status CHECK makes an
-- unknown status impossible, so the status fault is a transition the application's state machine
-- forbids. Everything else is consistent:
--   * orders.total_amount = subtotal + tax_amount + shipping_amount - discount_amount (enforced)
--   * orders.subtotal     = SUM(unit_price * quantity - discount_amount) of the order's items
--   * every previous_status → status is a transition the application allows
--   * products.stock_quantity = SUM(product_inventory.quantity_available) of the product
--   * every user is active, verified, has a role and a bcrypt ($2a$12$) password hash
--   * audit_logs holds the last day's logins, as the API writes them (LOGIN, LOGIN_FAILED,
--     ACCOUNT_LOCKOUT), with two attacks in it (see below)
--
-- Passwords: admin@example.com / admin123, every other bcrypt user / erpgo-demo.
-- Rows reference each other by natural keys (email, role name, sku, order_number), so the
-- generated uuids never appear here. The guide's variant of this data is seed_guide.sql.

BEGIN;

-- Roles: permissions are TEXT[] of the application's "<resource>.<action>" names ------------------

INSERT INTO roles (name, description, permissions) VALUES
  ('admin',      'System Administrator',
   ARRAY['users.create', 'users.read', 'users.update', 'users.delete', 'roles.create', 'roles.read', 'roles.update',
         'roles.delete', 'products.create', 'products.read', 'products.update', 'products.delete', 'orders.create',
         'orders.read', 'orders.update', 'orders.delete', 'inventory.create', 'inventory.read', 'inventory.update',
         'inventory.delete', 'system.admin', 'system.read']),
  ('manager',    'Runs sales and operations',
   ARRAY['users.read', 'products.create', 'products.read', 'products.update', 'orders.create', 'orders.read',
         'orders.update', 'inventory.read', 'inventory.update', 'system.read']),
  ('sales',      'Creates and follows up orders',      ARRAY['products.read', 'orders.create', 'orders.read', 'orders.update']),
  ('warehouse',  'Picks, packs and counts stock',      ARRAY['products.read', 'orders.read', 'inventory.read', 'inventory.update']),
  ('accountant', 'Invoices, payments and reporting',   ARRAY['orders.read', 'products.read', 'system.read']),
  ('viewer',     'Read-only access',                   ARRAY['products.read', 'orders.read', 'inventory.read']);

-- Users -----------------------------------------------------------------------------------------

INSERT INTO users (email, username, first_name, last_name, password_hash,
                   is_active, is_verified, last_login_at, created_at, updated_at)
SELECT v.email, v.username, v.first_name, v.last_name, v.password_hash,
       v.is_active, true, now() - v.last_login, now() - v.age, now() - v.age
FROM (VALUES
  ('admin@example.com',      'admin',     'System', 'Administrator', '$2a$12$xkC6wKb6TIGRPQurS9iXhuW7ibsLSvGAb2V3cnYIRZSL7Lur79Nve', true,  interval '2 hours',  interval '400 days'),
  ('j.martin@example.com',   'jmartin',   'Julia',  'Martin',        '$2a$12$hvEg.KluP4n66aAqzJi1ruL1/lFyOkAkJw.zMJzo9N9MtMZ7BXDbO', true,  interval '1 day',    interval '380 days'),
  ('a.kowalski@example.com', 'akowalski', 'Adam',   'Kowalski',      '$2a$12$tl/iCqVMESrLJg5hXylmrejiGLNBZHQrFfHgN5Vq4iytgbiRv/Fl.', true,  interval '3 days',   interval '350 days'),
  ('s.okafor@example.com',   'sokafor',   'Samuel', 'Okafor',        '$2a$12$nuqEoX1wJ41rQgwBAvh4Xu9cNkulainQCzFYVdoLIjB789baHXl4O', true,  interval '5 hours',  interval '300 days'),
  ('p.novak@example.com',    'pnovak',    'Petra',  'Novak',         '$2a$12$VQSkiZHicj2Ltwp0m00CMeXNLbuV3Yxc5Dg0ohUybr7Bw1t90IdlK', true,  interval '2 days',   interval '280 days'),
  ('l.chen@example.com',     'lchen',     'Li',     'Chen',          '$2a$12$m2ingeuzzCBOZ893Mr.Je.n.nmk0MjfFXR9ihrt6Q31zkioBAmIt2', true,  interval '9 hours',  interval '260 days'),
  ('k.tanaka@example.com',   'ktanaka',   'Kenji',  'Tanaka',        '$2a$12$tmPEf6lEAN6PyJmFNj5tou5ezFI1SQuEwM/FbpmhrXsfD8x.7Jwde', true,  interval '1 day',    interval '240 days'),
  ('m.rossi@example.com',    'mrossi',    'Marco',  'Rossi',         '$2a$12$lm0dVX7HT.xf5FzUxYu8OOEc67JNwIv9ajIMY6I77PMGwB2LiqdWm', true,  interval '4 days',   interval '200 days'),
  ('r.silva@example.com',    'rsilva',    'Rita',   'Silva',         '$2a$12$gvPNTCEmsrxpTWQEGcoZ7OOosiYPCN8fszP1dZfCz/WWn7gCKGbKe', true,  interval '12 days',  interval '150 days'),
  ('h.berg@example.com',     'hberg',     'Hanna',  'Berg',          '$2a$12$hNOCVOADF1yFHbNAMF4D7.DDAVXUuCudKD.FFu039Wvd.rQpeMaD2', true,  interval '6 days',   interval '90 days'),
  -- FAULT: inactive user. Emma left the company and was deactivated; her logins now fail.
  ('e.dubois@example.com',   'edubois',   'Emma',   'Dubois',        '$2a$12$efZFNZZS4L.ZvllyuzqrB.2s2WI1nGQ8QY0yz3o87k3NRd8.2MZwC', false, interval '75 days',  interval '320 days'),
  -- FAULT: user without any role. A new hire whose role was never assigned (see user_roles).
  ('n.patel@example.com',    'npatel',    'Nikhil', 'Patel',         '$2a$12$TNeJRTdY39Q/oJ5VAI5TGOiiLA7iiZqU3fFDOoOla5JqsZkyuHRZ6', true,  interval '1 hour',   interval '3 days'),
  -- FAULT: password hash is not bcrypt. An unsalted md5 hex digest carried over by a legacy
  -- import, so "password_hash LIKE '$2a$%'" is false and login always fails (401 UNAUTHORIZED "invalid credentials").
  ('t.walker@example.com',   'twalker',   'Tom',    'Walker',        'b56e0b4ea4962283bee762525c2d490f',                             true,  interval '30 days',  interval '500 days')
) AS v(email, username, first_name, last_name, password_hash, is_active, last_login, age);

INSERT INTO user_roles (user_id, role_id, assigned_at, assigned_by)
SELECT u.id, r.id, u.created_at + interval '1 hour', admin.id
FROM (VALUES
  ('admin@example.com',      'admin'),
  ('j.martin@example.com',   'manager'),
  ('a.kowalski@example.com', 'manager'),
  ('a.kowalski@example.com', 'accountant'),
  ('s.okafor@example.com',   'sales'),
  ('p.novak@example.com',    'sales'),
  ('l.chen@example.com',     'warehouse'),
  ('k.tanaka@example.com',   'warehouse'),
  ('m.rossi@example.com',    'accountant'),
  ('r.silva@example.com',    'viewer'),
  ('h.berg@example.com',     'viewer'),
  ('e.dubois@example.com',   'sales'),
  ('t.walker@example.com',   'warehouse')
  -- FAULT (continued): no row for n.patel@example.com.
) AS v(email, role)
JOIN users u ON u.email = v.email
JOIN roles r ON r.name = v.role
CROSS JOIN (SELECT id FROM users WHERE email = 'admin@example.com') AS admin;

-- Customers -------------------------------------------------------------------------------------

INSERT INTO customers (name, email, phone, created_at, updated_at)
SELECT v.name, v.email, v.phone, now() - v.age, now() - v.age
FROM (VALUES
  ('Acme Corporation',         'billing@acme.example',         '+1 555 0100', interval '420 days'),
  ('Globex Inc.',              'ap@globex.example',            '+1 555 0101', interval '410 days'),
  ('Initech',                  'orders@initech.example',       '+1 555 0102', interval '395 days'),
  ('Umbrella Supplies',        'purchasing@umbrella.example',  '+1 555 0103', interval '380 days'),
  ('Stark Industrial',         'finance@stark.example',        '+1 555 0104', interval '366 days'),
  ('Wayne Enterprises',        'buy@wayne.example',            '+1 555 0105', interval '350 days'),
  ('Tyrell Systems',           'procure@tyrell.example',       '+1 555 0106', interval '333 days'),
  ('Cyberdyne Components',     'ap@cyberdyne.example',         '+1 555 0107', interval '310 days'),
  ('Hooli',                    'orders@hooli.example',         '+1 555 0108', interval '295 days'),
  ('Pied Piper',               'billing@piedpiper.example',    '+1 555 0109', interval '270 days'),
  ('Soylent Foods',            'ap@soylent.example',           '+1 555 0110', interval '255 days'),
  ('Wonka Confectionery',      'orders@wonka.example',         '+1 555 0111', interval '240 days'),
  ('Gringotts Facilities',     'purchasing@gringotts.example', '+1 555 0112', interval '220 days'),
  ('Oscorp Labs',              'billing@oscorp.example',       '+1 555 0113', interval '200 days'),
  ('Vandelay Industries',      'orders@vandelay.example',      '+1 555 0114', interval '180 days'),
  ('Dunder Paper',             'ap@dunder.example',            '+1 555 0115', interval '160 days'),
  ('Aperture Science',         'procurement@aperture.example', '+1 555 0116', interval '140 days'),
  ('Black Mesa Research',      'orders@blackmesa.example',     '+1 555 0117', interval '120 days'),
  ('Massive Dynamic',          'billing@massive.example',      '+1 555 0118', interval '100 days'),
  ('Contoso Ltd',              'ap@contoso.example',           '+1 555 0119', interval '80 days')
) AS v(name, email, phone, age);

-- Warehouses, products and stock ----------------------------------------------------------------

INSERT INTO warehouses (name, code, address, city, country, postal_code) VALUES
  ('Main warehouse', 'MAIN', '1 Depot Road',      'Springfield', 'US', '62701'),
  ('East warehouse', 'EAST', '44 Harbour Street', 'Portsmouth',  'US', '03801');

INSERT INTO products (sku, name, category, price, cost, stock_quantity, min_stock_level, is_active)
VALUES
  -- FAULT: stock_quantity disagrees with the warehouses. A manual +20 adjustment was written to
  -- products only: 412 here, but product_inventory holds 274 (MAIN) + 118 (EAST) = 392.
  ('SKU-WIDGET-RED',   'Widget, red',               'widgets',    19.99,   8.40, 412, 50, true),
  ('SKU-WIDGET-BLUE',  'Widget, blue',              'widgets',    19.99,   8.40, 381, 50, true),
  ('SKU-WIDGET-GREEN', 'Widget, green',             'widgets',    21.49,   9.10, 338, 50, true),
  ('SKU-GADGET-MINI',  'Gadget Mini',               'gadgets',    49.00,  22.75, 454, 10, true),
  ('SKU-GADGET-PRO',   'Gadget Pro',                'gadgets',   129.00,  61.20, 194, 10, true),
  ('SKU-GADGET-MAX',   'Gadget Max',                'gadgets',   249.00, 118.00,  28, 10, true),
  ('SKU-BOLT-M6',      'Hex bolt M6 (box of 100)',  'fasteners',   7.50,   2.10, 246, 50, true),
  ('SKU-BOLT-M8',      'Hex bolt M8 (box of 100)',  'fasteners',   9.25,   2.90, 200, 50, true),
  ('SKU-NUT-M6',       'Hex nut M6 (box of 100)',   'fasteners',   4.80,   1.20, 151, 50, true),
  ('SKU-NUT-M8',       'Hex nut M8 (box of 100)',   'fasteners',   5.60,   1.55, 121, 50, true),
  ('SKU-WASHER-M8',    'Washer M8 (box of 200)',    'fasteners',   3.95,   0.85, 415, 50, true),
  ('SKU-CABLE-USB-C',  'USB-C cable 1 m',           'cables',     12.90,   3.40, 485, 50, true),
  ('SKU-CABLE-HDMI',   'HDMI cable 2 m',            'cables',     15.50,   4.10, 351, 50, true),
  ('SKU-CABLE-CAT6',   'Cat6 patch cable 5 m',      'cables',      8.99,   2.30, 441, 50, true),
  ('SKU-SENSOR-TEMP',  'Temperature sensor',        'sensors',    34.00,  14.60, 250, 10, true),
  ('SKU-SENSOR-HUM',   'Humidity sensor',           'sensors',    38.50,  16.90, 407, 10, true),
  ('SKU-SENSOR-PIR',   'Motion sensor (PIR)',       'sensors',    27.25,  11.05, 108, 10, true),
  ('SKU-PSU-12V',      'Power supply 12 V 2 A',     'power',      24.90,  10.30, 262, 10, true),
  ('SKU-PSU-24V',      'Power supply 24 V 5 A',     'power',      59.00,  27.40, 496, 10, true),
  ('SKU-BATT-AA',      'AA batteries (pack of 8)',  'power',       6.49,   2.60, 476, 10, true),
  ('SKU-TOOL-DRIVER',  'Precision screwdriver set', 'tools',      29.95,  12.00, 175, 10, true),
  ('SKU-TOOL-CRIMP',   'Crimping tool',             'tools',      44.00,  19.80, 282, 10, true),
  ('SKU-LABEL-ROLL',   'Label printer roll',        'supplies',   11.20,   4.05, 400, 50, true),
  -- Discontinued: no warehouse rows, stock 0 (consistent, not a fault).
  ('SKU-GADGET-V1',    'Gadget (first generation)', 'gadgets',    99.00,  47.00,   0, 10, false);

INSERT INTO product_inventory (product_id, warehouse_id, quantity_available, quantity_reserved)
SELECT p.id, w.id, v.available, v.reserved
FROM (VALUES
  ('SKU-WIDGET-RED',   'MAIN', 274, 11),
  ('SKU-WIDGET-RED',   'EAST', 118,  7),
  ('SKU-WIDGET-BLUE',  'MAIN', 296, 14),
  ('SKU-WIDGET-BLUE',  'EAST',  85,  1),
  ('SKU-WIDGET-GREEN', 'MAIN', 263, 14),
  ('SKU-WIDGET-GREEN', 'EAST',  75,  5),
  ('SKU-GADGET-MINI',  'MAIN', 317,  1),
  ('SKU-GADGET-MINI',  'EAST', 137,  8),
  ('SKU-GADGET-PRO',   'MAIN',  51, 10),
  ('SKU-GADGET-PRO',   'EAST', 143,  8),
  ('SKU-GADGET-MAX',   'MAIN',  20,  4),
  ('SKU-GADGET-MAX',   'EAST',   8,  8),
  ('SKU-BOLT-M6',      'MAIN', 143, 12),
  ('SKU-BOLT-M6',      'EAST', 103,  2),
  ('SKU-BOLT-M8',      'MAIN', 150, 12),
  ('SKU-BOLT-M8',      'EAST',  50,  3),
  ('SKU-NUT-M6',       'MAIN', 151, 14),
  ('SKU-NUT-M8',       'MAIN', 121,  4),
  ('SKU-WASHER-M8',    'MAIN', 318,  8),
  ('SKU-WASHER-M8',    'EAST',  97,  3),
  ('SKU-CABLE-USB-C',  'MAIN', 392, 10),
  ('SKU-CABLE-USB-C',  'EAST',  93,  2),
  ('SKU-CABLE-HDMI',   'MAIN', 301, 13),
  ('SKU-CABLE-HDMI',   'EAST',  50,  0),
  ('SKU-CABLE-CAT6',   'MAIN', 372, 13),
  ('SKU-CABLE-CAT6',   'EAST',  69,  8),
  ('SKU-SENSOR-TEMP',  'MAIN', 142,  2),
  ('SKU-SENSOR-TEMP',  'EAST', 108,  5),
  ('SKU-SENSOR-HUM',   'MAIN', 375, 12),
  ('SKU-SENSOR-HUM',   'EAST',  32,  8),
  ('SKU-SENSOR-PIR',   'MAIN',  21, 14),
  ('SKU-SENSOR-PIR',   'EAST',  87,  2),
  ('SKU-PSU-12V',      'MAIN', 140, 12),
  ('SKU-PSU-12V',      'EAST', 122,  8),
  ('SKU-PSU-24V',      'MAIN', 382,  0),
  ('SKU-PSU-24V',      'EAST', 114,  5),
  ('SKU-BATT-AA',      'MAIN', 370, 13),
  ('SKU-BATT-AA',      'EAST', 106,  2),
  ('SKU-TOOL-DRIVER',  'MAIN', 175,  2),
  ('SKU-TOOL-CRIMP',   'MAIN', 189, 10),
  ('SKU-TOOL-CRIMP',   'EAST',  93,  0),
  ('SKU-LABEL-ROLL',   'MAIN', 271,  1),
  ('SKU-LABEL-ROLL',   'EAST', 129,  2)
) AS v(sku, warehouse, available, reserved)
JOIN products p ON p.sku = v.sku
JOIN warehouses w ON w.code = v.warehouse;

-- Orders ----------------------------------------------------------------------------------------
-- Tax is 8 % of the subtotal, shipping is free from 250.00, some customers get 5 % off. Paid and
-- refunded orders carry their amounts; previous_status is the status each order came from.

INSERT INTO orders (order_number, customer_id, status, previous_status, payment_status, subtotal, tax_amount,
                    shipping_amount, discount_amount, total_amount, paid_amount, refunded_amount, order_date,
                    created_by, created_at, updated_at)
SELECT v.order_number, c.id, v.status, v.previous_status, v.payment_status, v.subtotal, v.tax, v.shipping,
       v.discount, v.total, v.paid, v.refunded, now() - v.age * interval '1 day', admin.id,
       now() - v.age * interval '1 day', now() - v.age * interval '1 day' + interval '2 hours'
FROM (VALUES
  ('SO-1001', 'purchasing@gringotts.example', 'DELIVERED',         'SHIPPED',    'PAID',      148.04, 11.84, 14.95,  0.00,  174.83,  174.83,    0.00, 60),
  ('SO-1002', 'orders@initech.example',       'DELIVERED',         'SHIPPED',    'PAID',       53.07,  4.25, 14.95,  2.65,   69.62,   69.62,    0.00, 58),
  -- FAULT: subtotal disagrees with the order's items. A label roll line (1 × 11.20) was deleted
  -- from SO-1003 after it was invoiced; the application's item trigger reads NEW.order_id, which
  -- is NULL on DELETE, so the order kept its subtotal of 65.70 while its items add up to 54.50.
  -- Not paid yet (payment PENDING), so recalculating it does not break check_paid_vs_total.
  ('SO-1003', 'billing@piedpiper.example',    'DELIVERED',         'SHIPPED',    'PENDING',    65.70,  5.26, 14.95,  3.29,   82.62,    0.00,    0.00, 57),
  ('SO-1004', 'ap@contoso.example',           'DELIVERED',         'SHIPPED',    'PAID',       73.05,  5.84,  9.95,  3.65,   85.19,   85.19,    0.00, 54),
  ('SO-1005', 'ap@cyberdyne.example',         'DELIVERED',         'SHIPPED',    'PAID',      331.30, 26.50,  0.00, 16.57,  341.23,  341.23,    0.00, 53),
  ('SO-1006', 'orders@blackmesa.example',     'DELIVERED',         'SHIPPED',    'PAID',       87.49,  7.00,  9.95,  0.00,  104.44,  104.44,    0.00, 51),
  ('SO-1007', 'ap@globex.example',            'DELIVERED',         'SHIPPED',    'PAID',      516.00, 41.28,  0.00, 25.80,  531.48,  531.48,    0.00, 49),
  ('SO-1008', 'ap@soylent.example',           'DELIVERED',         'SHIPPED',    'PAID',      113.84,  9.11,  9.95,  0.00,  132.90,  132.90,    0.00, 46),
  ('SO-1009', 'buy@wayne.example',            'CANCELLED',         'CONFIRMED',  'REFUNDED',  119.80,  9.58, 14.95,  0.00,  144.33,  144.33,  144.33, 44),
  ('SO-1010', 'ap@cyberdyne.example',         'DELIVERED',         'SHIPPED',    'PAID',      165.40, 13.23,  9.95,  0.00,  188.58,  188.58,    0.00, 42),
  ('SO-1011', 'purchasing@umbrella.example',  'DELIVERED',         'SHIPPED',    'PAID',      129.00, 10.32, 14.95,  0.00,  154.27,  154.27,    0.00, 40),
  ('SO-1012', 'buy@wayne.example',            'DELIVERED',         'SHIPPED',    'PAID',      159.91, 12.79, 14.95,  0.00,  187.65,  187.65,    0.00, 39),
  ('SO-1013', 'billing@piedpiper.example',    'DELIVERED',         'SHIPPED',    'PAID',      361.00, 28.88,  0.00,  0.00,  389.88,  389.88,    0.00, 37),
  ('SO-1014', 'orders@wonka.example',         'REFUNDED',          'DELIVERED',  'REFUNDED',  198.10, 15.85, 14.95,  9.91,  218.99,  218.99,  218.99, 34),
  ('SO-1015', 'orders@blackmesa.example',     'DELIVERED',         'SHIPPED',    'PAID',      282.30, 22.58,  0.00,  0.00,  304.88,  304.88,    0.00, 33),
  ('SO-1016', 'billing@massive.example',      'DELIVERED',         'SHIPPED',    'PAID',       54.50,  4.36, 14.95,  2.73,   71.08,   71.08,    0.00, 31),
  ('SO-1017', 'procurement@aperture.example', 'DELIVERED',         'SHIPPED',    'PAID',      134.85, 10.79, 14.95,  0.00,  160.59,  160.59,    0.00, 29),
  ('SO-1018', 'purchasing@umbrella.example',  'DELIVERED',         'SHIPPED',    'PAID',       95.90,  7.67,  9.95,  0.00,  113.52,  113.52,    0.00, 27),
  ('SO-1019', 'billing@piedpiper.example',    'DELIVERED',         'SHIPPED',    'PAID',     1008.90, 80.71,  0.00,  0.00, 1089.61, 1089.61,    0.00, 24),
  ('SO-1020', 'ap@dunder.example',            'DELIVERED',         'SHIPPED',    'PAID',      135.91, 10.87, 14.95,  0.00,  161.73,  161.73,    0.00, 22),
  ('SO-1021', 'orders@initech.example',       'DELIVERED',         'SHIPPED',    'PAID',      142.49, 11.40, 14.95,  0.00,  168.84,  168.84,    0.00, 21),
  ('SO-1022', 'ap@contoso.example',           'CANCELLED',         'CONFIRMED',  'REFUNDED', 1024.00, 81.92,  0.00,  0.00, 1105.92, 1105.92, 1105.92, 18),
  ('SO-1023', 'buy@wayne.example',            'SHIPPED',           'PROCESSING', 'PAID',      387.00, 30.96,  0.00,  0.00,  417.96,  417.96,    0.00, 16),
  ('SO-1024', 'billing@acme.example',         'SHIPPED',           'PROCESSING', 'PAID',       23.70,  1.90, 14.95,  0.00,   40.55,   40.55,    0.00, 14),
  ('SO-1025', 'buy@wayne.example',            'ON_HOLD',           'SHIPPED',    'PAID',       93.00,  7.44,  9.95,  0.00,  110.39,  110.39,    0.00, 13),
  ('SO-1026', 'procurement@aperture.example', 'PARTIALLY_SHIPPED', 'PROCESSING', 'PAID',      104.25,  8.34,  9.95,  0.00,  122.54,  122.54,    0.00, 10),
  -- FAULT: a status transition the application forbids (ORDER_002 in the guide's words). SO-1027
  -- was DELIVERED and was set back to PENDING by hand; the state machine allows DELIVERED only to
  -- RETURNED or REFUNDED, so every further status change of it fails.
  ('SO-1027', 'procure@tyrell.example',       'PENDING',           'DELIVERED',  'PAID',      183.92, 14.71, 14.95,  0.00,  213.58,  213.58,    0.00,  8),
  ('SO-1028', 'procure@tyrell.example',       'PROCESSING',        'CONFIRMED',  'PAID',        6.49,  0.52, 14.95,  0.00,   21.96,   21.96,    0.00,  6),
  ('SO-1029', 'orders@vandelay.example',      'CONFIRMED',         'PENDING',    'PENDING',   918.98, 73.52,  0.00, 45.95,  946.55,    0.00,    0.00,  4),
  ('SO-1030', 'ap@soylent.example',           'PENDING',           'DRAFT',      'PENDING',   119.59,  9.57, 14.95,  0.00,  144.11,    0.00,    0.00,  3)
) AS v(order_number, customer_email, status, previous_status, payment_status, subtotal, tax, shipping, discount,
       total, paid, refunded, age)
JOIN customers c ON c.email = v.customer_email
CROSS JOIN (SELECT id FROM users WHERE email = 'admin@example.com') AS admin;

INSERT INTO order_items (order_id, product_id, product_sku, product_name, quantity, unit_price, total_price, status,
                         created_at, updated_at)
SELECT o.id, p.id, p.sku, p.name, v.quantity, v.unit_price, v.quantity * v.unit_price,
       CASE WHEN o.status IN ('DELIVERED', 'REFUNDED') THEN 'DELIVERED' WHEN o.status = 'CANCELLED' THEN 'CANCELLED' ELSE 'ORDERED' END,
       o.created_at, o.created_at
FROM (VALUES
  ('SO-1001', 'SKU-WIDGET-GREEN',  1,  21.49),
  ('SO-1001', 'SKU-NUT-M8',        8,   5.60),
  ('SO-1001', 'SKU-SENSOR-PIR',    3,  27.25),
  ('SO-1002', 'SKU-NUT-M8',        6,   5.60),
  ('SO-1002', 'SKU-BATT-AA',       3,   6.49),
  -- FAULT (continued): SO-1003 also had ('SKU-LABEL-ROLL', 1, 11.20); that line was deleted.
  ('SO-1003', 'SKU-SENSOR-PIR',    2,  27.25),
  ('SO-1004', 'SKU-NUT-M6',        6,   4.80),
  ('SO-1004', 'SKU-BOLT-M8',       1,   9.25),
  ('SO-1005', 'SKU-GADGET-MAX',    1, 249.00),
  ('SO-1005', 'SKU-TOOL-DRIVER',   2,  29.95),
  ('SO-1005', 'SKU-NUT-M8',        4,   5.60),
  ('SO-1006', 'SKU-WIDGET-RED',    1,  19.99),
  ('SO-1006', 'SKU-BOLT-M6',       9,   7.50),
  ('SO-1007', 'SKU-GADGET-PRO',    4, 129.00),
  ('SO-1008', 'SKU-CABLE-CAT6',    6,   8.99),
  ('SO-1008', 'SKU-TOOL-DRIVER',   2,  29.95),
  ('SO-1009', 'SKU-TOOL-DRIVER',   4,  29.95),
  ('SO-1010', 'SKU-TOOL-CRIMP',    2,  44.00),
  ('SO-1010', 'SKU-CABLE-USB-C',   6,  12.90),
  ('SO-1011', 'SKU-GADGET-PRO',    1, 129.00),
  ('SO-1012', 'SKU-SENSOR-PIR',    3,  27.25),
  ('SO-1012', 'SKU-WASHER-M8',     5,   3.95),
  ('SO-1012', 'SKU-BATT-AA',       9,   6.49),
  ('SO-1013', 'SKU-GADGET-MINI',   3,  49.00),
  ('SO-1013', 'SKU-PSU-24V',       1,  59.00),
  ('SO-1013', 'SKU-CABLE-HDMI',   10,  15.50),
  ('SO-1014', 'SKU-CABLE-HDMI',    7,  15.50),
  ('SO-1014', 'SKU-LABEL-ROLL',    8,  11.20),
  ('SO-1015', 'SKU-CABLE-HDMI',    8,  15.50),
  ('SO-1015', 'SKU-SENSOR-HUM',    1,  38.50),
  ('SO-1015', 'SKU-TOOL-DRIVER',   4,  29.95),
  ('SO-1016', 'SKU-SENSOR-PIR',    2,  27.25),
  ('SO-1017', 'SKU-BOLT-M6',       1,   7.50),
  ('SO-1017', 'SKU-SENSOR-HUM',    3,  38.50),
  ('SO-1017', 'SKU-WASHER-M8',     3,   3.95),
  ('SO-1018', 'SKU-BATT-AA',      10,   6.49),
  ('SO-1018', 'SKU-CABLE-HDMI',    2,  15.50),
  ('SO-1019', 'SKU-CABLE-USB-C',   1,  12.90),
  ('SO-1019', 'SKU-GADGET-MAX',    4, 249.00),
  ('SO-1020', 'SKU-WIDGET-RED',    5,  19.99),
  ('SO-1020', 'SKU-CABLE-CAT6',    4,   8.99),
  ('SO-1021', 'SKU-SENSOR-TEMP',   4,  34.00),
  ('SO-1021', 'SKU-BATT-AA',       1,   6.49),
  ('SO-1022', 'SKU-GADGET-MAX',    4, 249.00),
  ('SO-1022', 'SKU-NUT-M8',        5,   5.60),
  ('SO-1023', 'SKU-GADGET-PRO',    3, 129.00),
  ('SO-1024', 'SKU-WASHER-M8',     6,   3.95),
  ('SO-1025', 'SKU-CABLE-HDMI',    6,  15.50),
  ('SO-1026', 'SKU-SENSOR-PIR',    1,  27.25),
  ('SO-1026', 'SKU-SENSOR-HUM',    2,  38.50),
  ('SO-1027', 'SKU-TOOL-CRIMP',    3,  44.00),
  ('SO-1027', 'SKU-BATT-AA',       8,   6.49),
  ('SO-1028', 'SKU-BATT-AA',       1,   6.49),
  ('SO-1029', 'SKU-GADGET-MAX',    3, 249.00),
  ('SO-1029', 'SKU-WIDGET-BLUE',   2,  19.99),
  ('SO-1029', 'SKU-TOOL-CRIMP',    3,  44.00),
  ('SO-1030', 'SKU-WIDGET-RED',    1,  19.99),
  ('SO-1030', 'SKU-PSU-12V',       4,  24.90)
) AS v(order_number, sku, quantity, unit_price)
JOIN orders o ON o.order_number = v.order_number
JOIN products p ON p.sku = v.sku;

-- FAULT: dangling reference. SO-1004 still has a line for a prototype product that was hard
-- deleted during a catalogue cleanup, back when order_items had no foreign key to products.
INSERT INTO order_items (order_id, product_id, product_sku, product_name, quantity, unit_price, total_price, status,
                         created_at, updated_at)
SELECT o.id, '7d3f5c1e-2b4a-4e8f-9a61-0c5b8e2d4f70', 'SKU-PROTO-HUB', 'Sensor hub (prototype)', 1, 35.00, 35.00,
       'DELIVERED', o.created_at, o.created_at
FROM orders o
WHERE o.order_number = 'SO-1004';

-- FAULT: NOT VALID foreign key. The application's migration adds fk_order_items_product_id; here
-- it was added without checking the existing rows (to avoid a long lock) and never validated:
-- pg_constraint.convalidated = false, and VALIDATE CONSTRAINT fails on SO-1004.
ALTER TABLE order_items
  ADD CONSTRAINT fk_order_items_product_id
  FOREIGN KEY (product_id) REFERENCES products(id) ON DELETE RESTRICT NOT VALID;

-- Audit trail -----------------------------------------------------------------------------------
-- What the API writes on every login (pkg/audit): LOGIN with the user, LOGIN_FAILED without one
-- (details: the e-mail tried and the error), ACCOUNT_LOCKOUT when the limiter locks an account.
-- Times are relative to the load, so "the last hour" always finds the attacks.

INSERT INTO audit_logs (timestamp, event_type, user_id, action, ip_address, user_agent, success, details, created_at)
SELECT now() - v.ago, v.event_type, u.id, v.action, v.ip::inet, v.agent, v.success,
       CASE WHEN v.event_type = 'LOGIN_FAILED'
            THEN jsonb_build_object('username', v.email, 'reason', 'UNAUTHORIZED: invalid credentials')
            WHEN v.event_type = 'ACCOUNT_LOCKOUT'
            THEN jsonb_build_object('reason', 'too many failed login attempts') END,
       now() - v.ago
FROM (VALUES
  -- ordinary days: logins, a typo or two
  ('LOGIN',        'user_login',        'admin@example.com',      '192.0.2.10',    'Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) Firefox/126.0', true,  interval '2 hours'),
  ('LOGIN_FAILED', 'user_login_failed', 'j.martin@example.com',   '192.0.2.10',    'Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/125.0',      false, interval '1 day 10 minutes'),
  ('LOGIN_FAILED', 'user_login_failed', 'j.martin@example.com',   '192.0.2.10',    'Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/125.0',      false, interval '1 day 9 minutes'),
  ('LOGIN',        'user_login',        'j.martin@example.com',   '192.0.2.10',    'Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/125.0',      true,  interval '1 day 8 minutes'),
  ('LOGIN',        'user_login',        's.okafor@example.com',   '192.0.2.31',    'Mozilla/5.0 (X11; Linux x86_64) Firefox/126.0',              true,  interval '5 hours'),
  ('LOGIN',        'user_login',        'l.chen@example.com',     '192.0.2.52',    'ERPGo-Scanner/2.1 (Android 14)',                             true,  interval '9 hours'),
  ('LOGIN',        'user_login',        'n.patel@example.com',    '192.0.2.60',    'Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) Safari/17.4',   true,  interval '1 hour'),
  -- the legacy md5 hash: t.walker can never log in
  ('LOGIN_FAILED', 'user_login_failed', 't.walker@example.com',   '192.0.2.17',    'Mozilla/5.0 (Windows NT 10.0; Win64; x64) Edge/125.0',       false, interval '20 hours'),
  ('LOGIN_FAILED', 'user_login_failed', 't.walker@example.com',   '192.0.2.17',    'Mozilla/5.0 (Windows NT 10.0; Win64; x64) Edge/125.0',       false, interval '19 hours 58 minutes'),
  ('LOGIN_FAILED', 'user_login_failed', 't.walker@example.com',   '192.0.2.17',    'Mozilla/5.0 (Windows NT 10.0; Win64; x64) Edge/125.0',       false, interval '3 hours'),
  -- the deactivated account, tried once
  ('LOGIN_FAILED', 'user_login_failed', 'e.dubois@example.com',   '192.0.2.44',    'Mozilla/5.0 (iPhone; CPU iPhone OS 17_5) Safari/17.4',       false, interval '6 hours'),
  -- FAULT: brute force. One address tries admin@example.com over and over until the account locks.
  ('LOGIN_FAILED', 'user_login_failed', 'admin@example.com',      '198.51.100.23', 'curl/8.5.0', false, interval '95 minutes'),
  ('LOGIN_FAILED', 'user_login_failed', 'admin@example.com',      '198.51.100.23', 'curl/8.5.0', false, interval '94 minutes'),
  ('LOGIN_FAILED', 'user_login_failed', 'admin@example.com',      '198.51.100.23', 'curl/8.5.0', false, interval '93 minutes'),
  ('LOGIN_FAILED', 'user_login_failed', 'admin@example.com',      '198.51.100.23', 'curl/8.5.0', false, interval '92 minutes'),
  ('LOGIN_FAILED', 'user_login_failed', 'admin@example.com',      '198.51.100.23', 'curl/8.5.0', false, interval '91 minutes'),
  ('ACCOUNT_LOCKOUT', 'account_locked', 'admin@example.com',      '198.51.100.23', NULL,         true,  interval '91 minutes'),
  -- FAULT: password spraying. One address tries one password against many accounts, a minute
  -- apart, to stay under the per-account lockout: existing users and guessed names alike.
  ('LOGIN_FAILED', 'user_login_failed', 'admin@example.com',      '203.0.113.66',  'python-requests/2.31.0', false, interval '24 minutes'),
  ('LOGIN_FAILED', 'user_login_failed', 'root@example.com',       '203.0.113.66',  'python-requests/2.31.0', false, interval '23 minutes'),
  ('LOGIN_FAILED', 'user_login_failed', 'j.martin@example.com',   '203.0.113.66',  'python-requests/2.31.0', false, interval '22 minutes'),
  ('LOGIN_FAILED', 'user_login_failed', 'a.kowalski@example.com', '203.0.113.66',  'python-requests/2.31.0', false, interval '21 minutes'),
  ('LOGIN_FAILED', 'user_login_failed', 's.okafor@example.com',   '203.0.113.66',  'python-requests/2.31.0', false, interval '20 minutes'),
  ('LOGIN_FAILED', 'user_login_failed', 'test@example.com',       '203.0.113.66',  'python-requests/2.31.0', false, interval '19 minutes'),
  ('LOGIN_FAILED', 'user_login_failed', 'p.novak@example.com',    '203.0.113.66',  'python-requests/2.31.0', false, interval '18 minutes'),
  ('LOGIN_FAILED', 'user_login_failed', 'l.chen@example.com',     '203.0.113.66',  'python-requests/2.31.0', false, interval '17 minutes'),
  ('LOGIN_FAILED', 'user_login_failed', 'k.tanaka@example.com',   '203.0.113.66',  'python-requests/2.31.0', false, interval '16 minutes'),
  ('LOGIN_FAILED', 'user_login_failed', 'm.rossi@example.com',    '203.0.113.66',  'python-requests/2.31.0', false, interval '15 minutes'),
  ('LOGIN_FAILED', 'user_login_failed', 'r.silva@example.com',    '203.0.113.66',  'python-requests/2.31.0', false, interval '14 minutes'),
  ('LOGIN_FAILED', 'user_login_failed', 'h.berg@example.com',     '203.0.113.66',  'python-requests/2.31.0', false, interval '13 minutes'),
  ('LOGIN_FAILED', 'user_login_failed', 'support@example.com',    '203.0.113.66',  'python-requests/2.31.0', false, interval '12 minutes'),
  ('LOGIN_FAILED', 'user_login_failed', 'n.patel@example.com',    '203.0.113.66',  'python-requests/2.31.0', false, interval '11 minutes')
) AS v(event_type, action, email, ip, agent, success, ago)
LEFT JOIN users u ON u.email = v.email AND v.event_type <> 'LOGIN_FAILED';

COMMIT;
