-- Sample rows for `flagproxy demo`, inserted into a database with the
-- schema Django's migrations create. Every column Django fills in is given.
INSERT INTO waffle_flag (name, everyone, percent, testing, superusers, staff, authenticated, languages, rollout, note, created, modified) VALUES
  ('new_checkout', 1,    NULL, 0, 1, 0, 0, '', 0, 'on for everyone', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP),
  ('beta_banner',  NULL, 50.0, 0, 1, 0, 0, '', 0, 'half of the visitors, sticky through the dwf_beta_banner cookie', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP),
  ('staff_tools',  NULL, NULL, 0, 1, 1, 0, '', 0, 'staff and superusers only', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP),
  ('qa_preview',   NULL, NULL, 1, 1, 0, 0, '', 0, 'testing mode: try ?dwft_qa_preview=1', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP),
  ('beta_dashboard', NULL, NULL, 0, 1, 0, 0, '', 0, 'for the beta-testers group (bob is in it)', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP);
INSERT INTO waffle_switch (name, active, note, created, modified) VALUES
  ('maintenance_mode', 0, '', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP),
  ('search_v2',        1, '', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP);
INSERT INTO waffle_sample (name, percent, note, created, modified) VALUES
  ('trace_requests', 10.0, '', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP);
INSERT INTO featureflipper_feature (name, description, enabled) VALUES
  ('awesome_text', 'Shows the awesome text on the home page', 1),
  ('dark_mode',    'Dark colour scheme', 0);
INSERT INTO flags_featureflag (key, enabled, rollout_percent) VALUES
  ('new-profile', 1, 100),
  ('gradual-rollout', 1, 25);

-- Users to log in as (the demo page's buttons write a Django session for
-- them): alice may flip (flagproxy_django's permission), bob is a plain
-- user in the beta-testers group, carol is staff.
INSERT INTO auth_group (id, name) VALUES (1, 'beta-testers');
INSERT INTO auth_user (id, password, last_login, is_superuser, username, first_name, last_name, email, is_staff, is_active, date_joined) VALUES
  (1, 'pbkdf2_sha256$260000$demo$alice=', NULL, 0, 'alice', 'Alice', '', 'alice@example.com', 0, 1, CURRENT_TIMESTAMP),
  (2, 'pbkdf2_sha256$260000$demo$bob=',   NULL, 0, 'bob',   'Bob',   '', 'bob@example.com',   0, 1, CURRENT_TIMESTAMP),
  (3, 'pbkdf2_sha256$260000$demo$carol=', NULL, 0, 'carol', 'Carol', '', 'carol@example.com', 1, 1, CURRENT_TIMESTAMP);
INSERT INTO auth_user_groups (user_id, group_id) VALUES (2, 1);
INSERT INTO waffle_flag_groups (flag_id, group_id) SELECT id, 1 FROM waffle_flag WHERE name = 'beta_dashboard';
INSERT INTO django_content_type (app_label, model) VALUES ('flagproxy_django', 'flagproxyflip');
INSERT INTO auth_permission (content_type_id, codename, name)
  SELECT id, 'can_flip_with_url', 'Can flip flags with ?enable_x (flagproxy)' FROM django_content_type WHERE app_label = 'flagproxy_django';
INSERT INTO auth_user_user_permissions (user_id, permission_id) SELECT 1, id FROM auth_permission WHERE codename = 'can_flip_with_url';
