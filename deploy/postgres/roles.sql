-- The ticketing database and its roles: `migrator` owns the database and its
-- tables and runs the migrations; each service logs in as its own role
-- (gateway, reservation, consumer, notifier, payment), which has no
-- privilege at all until `ticketing-admin db-grants` (run as the migrator,
-- after every `ticketing-admin migrate`) grants it the tables and
-- privileges its queries use (ticketing_tools/db_access.py).
--
-- Run once, as a superuser (or a role with CREATEROLE and CREATEDB), with
-- psql 15 or newer; the passwords come from the environment, never from the
-- command line:
--
--   DB_MIGRATOR_PASSWORD=... DB_GATEWAY_PASSWORD=... DB_RESERVATION_PASSWORD=... \
--   DB_CONSUMER_PASSWORD=... DB_NOTIFIER_PASSWORD=... DB_PAYMENT_PASSWORD=... \
--   psql -v ON_ERROR_STOP=1 -h db.internal -U postgres -d postgres -f deploy/postgres/roles.sql
--
-- deploy/compose.yaml runs it on the first start of an empty volume.

\getenv migrator_password DB_MIGRATOR_PASSWORD
\getenv gateway_password DB_GATEWAY_PASSWORD
\getenv reservation_password DB_RESERVATION_PASSWORD
\getenv consumer_password DB_CONSUMER_PASSWORD
\getenv notifier_password DB_NOTIFIER_PASSWORD
\getenv payment_password DB_PAYMENT_PASSWORD

-- Stored hashed by the server (scram-sha-256).
CREATE ROLE migrator LOGIN PASSWORD :'migrator_password';
CREATE ROLE gateway LOGIN PASSWORD :'gateway_password';
CREATE ROLE reservation LOGIN PASSWORD :'reservation_password';
CREATE ROLE consumer LOGIN PASSWORD :'consumer_password';
CREATE ROLE notifier LOGIN PASSWORD :'notifier_password';
CREATE ROLE payment LOGIN PASSWORD :'payment_password';

CREATE DATABASE ticketing OWNER migrator;
-- Only the suite's roles connect, and none of them may create temporary
-- tables or objects in the schema.
REVOKE ALL ON DATABASE ticketing FROM PUBLIC;
GRANT CONNECT ON DATABASE ticketing TO gateway, reservation, consumer, notifier, payment;

\connect ticketing
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
-- The services set plan_cache_mode on their connections; behind PgBouncer
-- set it on the roles instead (deploy/README.md).
