#!/usr/bin/env bash
# The database and its two roles (deploy/README.md, "Order of first start"),
# created once: the postgres image runs /docker-entrypoint-initdb.d/ on the
# first start of an empty data directory only. ticketing_owner owns the
# schema and runs the migrations; ticketing_app, the services' role, may read
# and write rows but not change the schema or delete anything.
set -euo pipefail

psql --set ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
  --set owner_password="$DB_OWNER_PASSWORD" --set app_password="$DB_APP_PASSWORD" <<'SQL'
CREATE ROLE ticketing_owner LOGIN PASSWORD :'owner_password';
CREATE ROLE ticketing_app LOGIN PASSWORD :'app_password';
CREATE DATABASE ticketing OWNER ticketing_owner;
SQL

# Before the first migration: every table the owner creates is the services'
# to read and write.
psql --set ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname ticketing <<'SQL'
ALTER DEFAULT PRIVILEGES FOR ROLE ticketing_owner IN SCHEMA public
  GRANT SELECT, INSERT, UPDATE ON TABLES TO ticketing_app;
SQL
