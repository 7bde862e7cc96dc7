-- Run once by the postgres image when docker-compose.yml creates the
-- database (as the owner, "example"). flagproxy only ever reads: give it a
-- role that can do nothing else. ALTER DEFAULT PRIVILEGES covers the tables
-- that Django's migrations create later, as "example".
CREATE ROLE flagproxy LOGIN PASSWORD 'flagproxy-read-only';
GRANT CONNECT ON DATABASE example TO flagproxy;
GRANT USAGE ON SCHEMA public TO flagproxy;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO flagproxy;
ALTER DEFAULT PRIVILEGES FOR ROLE example IN SCHEMA public GRANT SELECT ON TABLES TO flagproxy;
