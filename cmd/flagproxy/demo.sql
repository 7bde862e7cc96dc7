-- Sample rows for `flagproxy demo`, inserted into a database with the
-- schema Django's migrations create. Every column Django fills in is given.
INSERT INTO waffle_flag (name, everyone, percent, testing, superusers, staff, authenticated, languages, rollout, note, created, modified) VALUES
  ('new_checkout', 1,    NULL, 0, 1, 0, 0, '', 0, 'on for everyone', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP),
  ('beta_banner',  NULL, 50.0, 0, 1, 0, 0, '', 0, 'half of the visitors, sticky through the dwf_beta_banner cookie', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP),
  ('staff_tools',  NULL, NULL, 0, 1, 1, 0, '', 0, 'staff and superusers only', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP),
  ('qa_preview',   NULL, NULL, 1, 1, 0, 0, '', 0, 'testing mode: try ?dwft_qa_preview=1', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP);
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
