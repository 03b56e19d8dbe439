-- ERPGo demo data for the guide's schema, loaded after schema_guide.sql into a fresh database
-- (seed.sql is the same data for the real ERPGo's schema).
--
-- Realistic but small, and deliberately broken in a few places so the runbooks have something
-- to find. Every planted fault is marked with a "-- FAULT:" comment; demo/README.md lists them
-- with the query that finds each one. Everything else is consistent:
--   * orders.total_amount = subtotal + tax_amount + shipping_amount - discount_amount
--   * orders.subtotal     = SUM(order_items.total_price) of the order
--   * products.stock_quantity = SUM(product_inventory.quantity_available) of the product
--   * every user is active, verified, has a role and a bcrypt ($2a$12$) password hash
--
-- Passwords: admin@example.com / admin123, every other bcrypt user / erpgo-demo.
-- Rows reference each other by natural keys (email, role name, sku, order_number), so the
-- generated uuids never appear here.

BEGIN;

-- Roles -----------------------------------------------------------------------------------------

INSERT INTO roles (name, description, permissions) VALUES
  ('admin',      'Full access to every module',        '["*"]'),
  ('manager',    'Runs sales and operations',          '["users:read", "products:*", "orders:*", "inventory:*", "reports:read"]'),
  ('sales',      'Creates and follows up orders',      '["customers:*", "orders:create", "orders:read", "orders:update", "products:read"]'),
  ('warehouse',  'Picks, packs and counts stock',      '["inventory:*", "products:read", "orders:read", "orders:update_status"]'),
  ('accountant', 'Invoices, payments and reporting',   '["orders:read", "customers:read", "reports:*"]'),
  ('viewer',     'Read-only access',                   '["products:read", "orders:read", "customers:read"]');

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
  -- import, so "password_hash LIKE '$2a$%'" is false and login always fails (AUTH_001).
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

-- Products and stock ----------------------------------------------------------------------------

INSERT INTO products (sku, name, category, price, cost, stock_quantity, reorder_level, is_active)
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

INSERT INTO product_inventory (product_id, warehouse, quantity_available, quantity_reserved)
SELECT p.id, v.warehouse, v.available, v.reserved
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
JOIN products p ON p.sku = v.sku;

-- Orders ----------------------------------------------------------------------------------------
-- Tax is 8 % of the subtotal, shipping is free from 250.00, some customers get 5 % off.

INSERT INTO orders (order_number, customer_id, status, subtotal, tax_amount, shipping_amount,
                    discount_amount, total_amount, created_at, updated_at)
SELECT v.order_number, c.id, v.status, v.subtotal, v.tax, v.shipping, v.discount, v.total,
       now() - v.age * interval '1 day', now() - v.age * interval '1 day' + interval '2 hours'
FROM (VALUES
  ('SO-1001', 'purchasing@gringotts.example', 'delivered',   148.04, 11.84, 14.95,  0.00,  174.83, 60),
  ('SO-1002', 'orders@initech.example',       'delivered',    53.07,  4.25, 14.95,  2.65,   69.62, 58),
  -- FAULT: total does not add up. 54.50 + 4.36 + 14.95 - 2.73 = 71.08, stored as 73.81.
  ('SO-1003', 'billing@piedpiper.example',    'delivered',    54.50,  4.36, 14.95,  2.73,   73.81, 57),
  ('SO-1004', 'ap@contoso.example',           'delivered',    73.05,  5.84,  9.95,  3.65,   85.19, 54),
  ('SO-1005', 'ap@cyberdyne.example',         'delivered',   331.30, 26.50,  0.00, 16.57,  341.23, 53),
  ('SO-1006', 'orders@blackmesa.example',     'delivered',    87.49,  7.00,  9.95,  0.00,  104.44, 51),
  ('SO-1007', 'ap@globex.example',            'delivered',   516.00, 41.28,  0.00, 25.80,  531.48, 49),
  ('SO-1008', 'ap@soylent.example',           'delivered',   113.84,  9.11,  9.95,  0.00,  132.90, 46),
  ('SO-1009', 'buy@wayne.example',            'cancelled',   119.80,  9.58, 14.95,  0.00,  144.33, 44),
  ('SO-1010', 'ap@cyberdyne.example',         'delivered',   165.40, 13.23,  9.95,  0.00,  188.58, 42),
  ('SO-1011', 'purchasing@umbrella.example',  'delivered',   129.00, 10.32, 14.95,  0.00,  154.27, 40),
  ('SO-1012', 'buy@wayne.example',            'delivered',   159.91, 12.79, 14.95,  0.00,  187.65, 39),
  ('SO-1013', 'billing@piedpiper.example',    'delivered',   361.00, 28.88,  0.00,  0.00,  389.88, 37),
  ('SO-1014', 'orders@wonka.example',         'refunded',    198.10, 15.85, 14.95,  9.91,  218.99, 34),
  ('SO-1015', 'orders@blackmesa.example',     'delivered',   282.30, 22.58,  0.00,  0.00,  304.88, 33),
  ('SO-1016', 'billing@massive.example',      'delivered',    54.50,  4.36, 14.95,  2.73,   71.08, 31),
  ('SO-1017', 'procurement@aperture.example', 'delivered',   134.85, 10.79, 14.95,  0.00,  160.59, 29),
  ('SO-1018', 'purchasing@umbrella.example',  'delivered',    95.90,  7.67,  9.95,  0.00,  113.52, 27),
  ('SO-1019', 'billing@piedpiper.example',    'delivered',  1008.90, 80.71,  0.00,  0.00, 1089.61, 24),
  ('SO-1020', 'ap@dunder.example',            'delivered',   135.91, 10.87, 14.95,  0.00,  161.73, 22),
  ('SO-1021', 'orders@initech.example',       'delivered',   142.49, 11.40, 14.95,  0.00,  168.84, 21),
  ('SO-1022', 'ap@contoso.example',           'cancelled',  1024.00, 81.92,  0.00,  0.00, 1105.92, 18),
  ('SO-1023', 'buy@wayne.example',            'shipped',     387.00, 30.96,  0.00,  0.00,  417.96, 16),
  ('SO-1024', 'billing@acme.example',         'shipped',      23.70,  1.90, 14.95,  0.00,   40.55, 14),
  ('SO-1025', 'buy@wayne.example',            'shipped',      93.00,  7.44,  9.95,  0.00,  110.39, 13),
  ('SO-1026', 'procurement@aperture.example', 'shipped',     104.25,  8.34,  9.95,  0.00,  122.54, 10),
  -- FAULT: invalid status (ORDER_002). 'unknown' is not a state of the order state machine
  -- (pending, confirmed, processing, shipped, delivered, cancelled, refunded).
  ('SO-1027', 'procure@tyrell.example',       'unknown',     183.92, 14.71, 14.95,  0.00,  213.58,  8),
  ('SO-1028', 'procure@tyrell.example',       'processing',    6.49,  0.52, 14.95,  0.00,   21.96,  6),
  ('SO-1029', 'orders@vandelay.example',      'confirmed',   918.98, 73.52,  0.00, 45.95,  946.55,  4),
  ('SO-1030', 'ap@soylent.example',           'pending',     119.59,  9.57, 14.95,  0.00,  144.11,  3)
) AS v(order_number, customer_email, status, subtotal, tax, shipping, discount, total, age)
JOIN customers c ON c.email = v.customer_email;

INSERT INTO order_items (order_id, product_id, quantity, unit_price, total_price, created_at)
SELECT o.id, p.id, v.quantity, v.unit_price, v.quantity * v.unit_price, o.created_at
FROM (VALUES
  ('SO-1001', 'SKU-WIDGET-GREEN',  1,  21.49),
  ('SO-1001', 'SKU-NUT-M8',        8,   5.60),
  ('SO-1001', 'SKU-SENSOR-PIR',    3,  27.25),
  ('SO-1002', 'SKU-NUT-M8',        6,   5.60),
  ('SO-1002', 'SKU-BATT-AA',       3,   6.49),
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
INSERT INTO order_items (order_id, product_id, quantity, unit_price, total_price, created_at)
SELECT o.id, '7d3f5c1e-2b4a-4e8f-9a61-0c5b8e2d4f70', 1, 35.00, 35.00, o.created_at
FROM orders o
WHERE o.order_number = 'SO-1004';

-- FAULT: NOT VALID foreign key. The key was added later without checking the existing rows
-- (to avoid a long lock), and never validated: pg_constraint.convalidated = false, and
-- "ALTER TABLE order_items VALIDATE CONSTRAINT order_items_product_id_fkey" fails on SO-1004.
ALTER TABLE order_items
  ADD CONSTRAINT order_items_product_id_fkey
  FOREIGN KEY (product_id) REFERENCES products (id) NOT VALID;

COMMIT;
