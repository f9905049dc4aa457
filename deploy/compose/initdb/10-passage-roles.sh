#!/bin/bash
# First start of an EMPTY data volume only (docker-entrypoint-initdb.d), as the postgres
# user. Creates:
#   passage_owner  owns the database and schema; used only by `passage migrate`
#   passage_app    the app's role; migrations grant it least privilege (PASSAGE_DB_APP_ROLE)
# passage_app's password is the SCRAM verifier from the PgBouncer userlist, so PgBouncer
# and PostgreSQL hold the same verifier and no plain password is stored here.
set -euo pipefail

PASSAGE_OWNER_PASSWORD="$(cat /run/secrets/db_owner_password)"
PASSAGE_APP_VERIFIER="$(sed -n 's/^"passage_app"[[:space:]]*"\(SCRAM-SHA-256\$[^"]*\)".*$/\1/p' /run/secrets/pgbouncer_userlist)"
if [ -z "$PASSAGE_OWNER_PASSWORD" ] || [ -z "$PASSAGE_APP_VERIFIER" ]; then
    echo "10-passage-roles.sh: db_owner_password is empty or pgbouncer_userlist has no passage_app SCRAM line" >&2
    exit 1
fi
export PASSAGE_OWNER_PASSWORD PASSAGE_APP_VERIFIER

# Values reach psql through \getenv (PostgreSQL 15+), never through argv.
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres <<'SQL'
\getenv owner_password PASSAGE_OWNER_PASSWORD
\getenv app_verifier PASSAGE_APP_VERIFIER
CREATE ROLE passage_owner LOGIN PASSWORD :'owner_password';
CREATE ROLE passage_app LOGIN PASSWORD :'app_verifier';
CREATE DATABASE passage OWNER passage_owner;
REVOKE ALL ON DATABASE passage FROM PUBLIC;
GRANT CONNECT ON DATABASE passage TO passage_app;
\connect passage
REVOKE ALL ON SCHEMA public FROM PUBLIC;
ALTER SCHEMA public OWNER TO passage_owner;
SQL
unset PASSAGE_OWNER_PASSWORD PASSAGE_APP_VERIFIER
