"""Least privilege, granted by `db upgrade`: what the API's and the projector's roles may do.

Immutability must hold against the app's own credentials, not only against honest
callers. Neither role owns anything of the ledger, so neither can alter a table (no
trigger can be disabled), and neither is a superuser (no `session_replication_role`).
The API writes events only through `ledger_append`, made SECURITY DEFINER here with a
fixed search_path, so the rules of the append hold for every row. The projector owns
what it builds: the schemas of its builds and the views in `read`.

One idempotent step, run after the migrations every time (a migration that replaces
`ledger_append` resets its SECURITY DEFINER; this puts it back). Every grant is
recomputed from TABLE_GRANTS: what is not listed there is revoked.
"""

from __future__ import annotations

import contextlib
from typing import Any, NamedTuple

import psycopg
from psycopg import sql

from services.settings import Roles


class RolesError(RuntimeError):
    """The roles cannot be made safe as configured; the message says what to do."""


class TableGrant(NamedTuple):
    table: str
    api: str
    projector: str


TABLE_GRANTS: tuple[TableGrant, ...] = (
    TableGrant("events", api="SELECT", projector="SELECT"),
    TableGrant("event_tags", api="SELECT", projector="SELECT"),
    # Written only inside ledger_append; the API reads a key's first answer back, and
    # deletes keys past their retention (services/store/idempotency.py).
    TableGrant("idempotency_keys", api="SELECT, DELETE", projector=""),
    # Authentication reads keys and stamps last_used_at; creating, revoking and changing a
    # scope is for the owner's `community-ledger keys`.
    TableGrant("api_keys", api="SELECT, UPDATE (last_used_at)", projector=""),
    # A rebuild asked over HTTP is a row the projector takes up; the projector keeps the rest.
    TableGrant(
        "projection_builds",
        api="SELECT, INSERT, UPDATE (state, updated_at)",
        projector="SELECT, INSERT, UPDATE",
    ),
    TableGrant("projection_leases", api="SELECT", projector="SELECT, INSERT, UPDATE"),
    TableGrant("alembic_version", api="SELECT", projector="SELECT"),
    # Per-member data keys (erasure deletes them in the transaction that records it).
    TableGrant("member_keys", api="SELECT, INSERT, DELETE", projector="SELECT"),
    TableGrant("ledger_secrets", api="SELECT", projector="SELECT"),
    # Subscriptions are managed over HTTP (admin scope; a rotation writes the previous_*
    # secret columns); the dispatcher runs as the projector's role, reads both secrets,
    # advances checkpoints and logs each attempt. Table-wide rights cover new columns.
    TableGrant(
        "webhooks",
        api="SELECT, INSERT, UPDATE, DELETE",
        projector="SELECT, UPDATE (position, attempts, next_attempt_at, enabled, "
        "disabled_reason, updated_at)",
    ),
    TableGrant("webhook_deliveries", api="SELECT", projector="SELECT, INSERT"),
)
"""Every right either role has on a table of the ledger's schema; tables absent are skipped."""

SEQUENCE_GRANTS: tuple[TableGrant, ...] = (
    # A build's schema is named after the id it was just given (currval).
    TableGrant("projection_builds.build_id", api="USAGE, SELECT", projector="USAGE, SELECT"),
    TableGrant("webhook_deliveries.delivery_id", api="", projector="USAGE, SELECT"),
)
"""Identity sequences, by their table and column."""

DEFINER_FUNCTIONS = ("ledger_append",)
"""Run with the owner's rights, by the API only: the one way to add a row to the ledger."""

FORBIDDEN_TABLE_RIGHTS = {
    "events": "INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER",
    "event_tags": "INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER",
    "idempotency_keys": "INSERT, UPDATE, TRUNCATE, TRIGGER",
    "api_keys": "INSERT, DELETE, TRUNCATE, TRIGGER",
}
"""Checked after granting, so a right that comes from elsewhere (a membership in
pg_write_all_data, a grant to PUBLIC) is found, not assumed away."""


def grant(url: str, roles: Roles) -> None:
    """Create (when allowed) or check both roles, then grant exactly what each needs."""
    with psycopg.connect(url, autocommit=True) as conn:
        for name, password in (
            (roles.api, roles.api_password),
            (roles.projector, roles.projector_password),
        ):
            _ensure_role(conn, name, password)
        _refuse_powerful(conn, roles)
        _join_projector(conn, roles.projector)
        with conn.transaction():
            home = _home_schema(conn)
            _grant_schemas(conn, roles, home)
            _grant_tables(conn, roles, home)
            _make_definers(conn, roles, home)
            _give_builds_to_projector(conn, roles)
        verify(conn, roles)


def _ensure_role(conn: psycopg.Connection[Any], name: str, password: str | None) -> None:
    if _role_exists(conn, name):
        return
    row = conn.execute(
        "SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user"
    ).fetchone()
    if not row or not row[0]:
        raise RolesError(
            f"role {name!r} does not exist, and this user may not create roles: ask for "
            f"`CREATE ROLE {name} LOGIN PASSWORD '…'` (docs/security.md, \"Database roles\")"
        )
    query = sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS").format(
        sql.Identifier(name)
    )
    if password:
        query += sql.SQL(" PASSWORD {}").format(sql.Literal(password))
    # Another `db upgrade` (or test session) may create it between our look and ours.
    with contextlib.suppress(psycopg.errors.DuplicateObject, psycopg.errors.UniqueViolation):
        conn.execute(query)


def _role_exists(conn: psycopg.Connection[Any], name: str) -> bool:
    return conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [name]).fetchone() is not None


def _refuse_powerful(conn: psycopg.Connection[Any], roles: Roles) -> None:
    """A role that could lift its own limits makes every grant below decoration."""
    for name in (roles.api, roles.projector):
        row = conn.execute(
            """
            SELECT rolsuper, rolcreaterole, rolbypassrls,
                   pg_has_role(%(name)s::name, current_user, 'MEMBER')
            FROM pg_roles
            WHERE rolname = %(name)s
            """,
            {"name": name},
        ).fetchone()
        assert row is not None
        powers = [
            power
            for power, held in zip(
                ("SUPERUSER", "CREATEROLE", "BYPASSRLS", "membership in the owner"),
                row,
                strict=True,
            )
            if held
        ]
        if powers:
            raise RolesError(
                f"role {name!r} has {', '.join(powers)}: the API's and the projector's roles "
                'must not (docs/security.md, "Database roles")'
            )


def _join_projector(conn: psycopg.Connection[Any], projector: str) -> None:
    """The owner must be able to SET ROLE to the projector: `db upgrade` makes the first,
    empty builds as the projector, and hands it builds made before roles were configured."""
    # PostgreSQL 16 split membership into options: a role's creator holds only ADMIN.
    modern = conn.info.server_version >= 160000
    row = conn.execute(
        "SELECT pg_has_role(current_user, %s::name, %s::text)",
        [projector, "SET" if modern else "MEMBER"],
    ).fetchone()
    if row and row[0]:
        return
    query = sql.SQL("GRANT {} TO CURRENT_USER").format(sql.Identifier(projector))
    if modern:
        query += sql.SQL(" WITH INHERIT TRUE, SET TRUE")
    try:
        conn.execute(query)
    except psycopg.errors.InsufficientPrivilege as error:
        raise RolesError(
            f"this user cannot act as role {projector!r}: ask for "
            f'`GRANT {projector} TO <the owner>` (docs/security.md, "Database roles")'
        ) from error


def _home_schema(conn: psycopg.Connection[Any]) -> str:
    row = conn.execute(
        "SELECT relnamespace::regnamespace::text FROM pg_class WHERE oid = 'events'::regclass"
    ).fetchone()
    assert row is not None
    return str(row[0])


def _grant_schemas(conn: psycopg.Connection[Any], roles: Roles, home: str) -> None:
    api, projector = sql.Identifier(roles.api), sql.Identifier(roles.projector)
    both = sql.SQL("{}, {}").format(api, projector)
    # PostgreSQL 15's default, made explicit for older servers: nobody else creates objects
    # beside the ledger's (a function there could shadow one ledger_append calls).
    conn.execute(sql.SQL("REVOKE CREATE ON SCHEMA {} FROM PUBLIC").format(sql.Identifier(home)))
    conn.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(sql.Identifier(home), both))
    grant_database(conn, roles)
    if _one(conn, "SELECT to_regnamespace('read') IS NOT NULL"):
        conn.execute(sql.SQL("GRANT USAGE, CREATE ON SCHEMA read TO {}").format(projector))
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA read TO {}").format(api))
        conn.execute(sql.SQL("REVOKE CREATE ON SCHEMA read FROM {}").format(api))
        # The projector replaces the views at every swap: each new one is readable at once.
        conn.execute(
            sql.SQL(
                "ALTER DEFAULT PRIVILEGES FOR ROLE {} IN SCHEMA read GRANT SELECT ON TABLES TO {}"
            ).format(projector, api)
        )


def grant_database(conn: psycopg.Connection[Any], roles: Roles) -> None:
    """The rights on the database itself, which a copy made with CREATE DATABASE … TEMPLATE
    does not inherit (they live in the cluster's catalogue, not in the database)."""
    api, projector = sql.Identifier(roles.api), sql.Identifier(roles.projector)
    database = sql.Identifier(_one(conn, "SELECT current_database()"))
    conn.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}, {}").format(database, api, projector))
    # Each build is a schema the projector makes and later drops.
    conn.execute(sql.SQL("GRANT CREATE ON DATABASE {} TO {}").format(database, projector))
    conn.execute(sql.SQL("REVOKE CREATE ON DATABASE {} FROM {}").format(database, api))


def _grant_tables(conn: psycopg.Connection[Any], roles: Roles, home: str) -> None:
    schema = sql.Identifier(home)
    for role in (roles.api, roles.projector):
        who = sql.Identifier(role)
        conn.execute(sql.SQL("REVOKE ALL ON ALL TABLES IN SCHEMA {} FROM {}").format(schema, who))
        conn.execute(
            sql.SQL("REVOKE ALL ON ALL SEQUENCES IN SCHEMA {} FROM {}").format(schema, who)
        )
        conn.execute(
            sql.SQL("REVOKE ALL ON ALL FUNCTIONS IN SCHEMA {} FROM {}").format(schema, who)
        )
    for grants, kind in ((TABLE_GRANTS, "TABLE"), (SEQUENCE_GRANTS, "SEQUENCE")):
        for entry in grants:
            target = _relation(conn, home, entry.table, kind)
            if target is None:
                continue
            for role, rights in ((roles.api, entry.api), (roles.projector, entry.projector)):
                if rights:
                    # Rights are constants of this module, never input.
                    conn.execute(
                        sql.SQL("GRANT {} ON {} {} TO {}").format(
                            sql.SQL(rights), sql.SQL(kind), target, sql.Identifier(role)
                        )
                    )


def _relation(
    conn: psycopg.Connection[Any], home: str, name: str, kind: str
) -> sql.Composable | None:
    if kind == "SEQUENCE":
        table, column = name.split(".")
        found = (
            _one(
                conn,
                "SELECT pg_get_serial_sequence(format('%%I.%%I', %s::text, %s::text), %s::text)",
                [home, table, column],
            )
            if _exists(conn, home, table)
            else None
        )
        return sql.SQL(found) if found else None  # from the catalogue, already quoted
    return sql.Identifier(home, name) if _exists(conn, home, name) else None


def _exists(conn: psycopg.Connection[Any], home: str, table: str) -> bool:
    return bool(
        _one(
            conn,
            "SELECT to_regclass(format('%%I.%%I', %s::text, %s::text)) IS NOT NULL",
            [home, table],
        )
    )


def _make_definers(conn: psycopg.Connection[Any], roles: Roles, home: str) -> None:
    for name in DEFINER_FUNCTIONS:
        cur = conn.execute(
            "SELECT oid::regprocedure::text FROM pg_proc "
            "WHERE proname = %s::name AND pronamespace = %s::regnamespace",
            [name, home],
        )
        for (signature,) in cur.fetchall():
            function = sql.SQL(signature)  # from the catalogue, already quoted
            # A fixed search_path: the caller's cannot point a name inside at its own object.
            conn.execute(
                sql.SQL("ALTER FUNCTION {} SECURITY DEFINER SET search_path = {}, pg_temp").format(
                    function, sql.Identifier(home)
                )
            )
            conn.execute(sql.SQL("REVOKE ALL ON FUNCTION {} FROM PUBLIC").format(function))
            conn.execute(
                sql.SQL("GRANT EXECUTE ON FUNCTION {} TO {}").format(
                    function, sql.Identifier(roles.api)
                )
            )


def _give_builds_to_projector(conn: psycopg.Connection[Any], roles: Roles) -> None:
    """Builds made before the roles (by the owner) become the projector's, so it can swap
    and drop them; the views in `read` too, readable by the API."""
    if not _one(conn, "SELECT to_regclass('projection_builds') IS NOT NULL"):
        return
    projector, api = sql.Identifier(roles.projector), sql.Identifier(roles.api)
    schemas = conn.execute(
        """
        SELECT n.nspname
        FROM projection_builds b
        JOIN pg_namespace n ON n.nspname = b.schema_name
        WHERE n.nspowner <> %s::regrole
        """,
        [roles.projector],
    ).fetchall()
    for (schema,) in schemas:
        conn.execute(
            sql.SQL("ALTER SCHEMA {} OWNER TO {}").format(sql.Identifier(schema), projector)
        )
    relations = conn.execute(
        """
        SELECT n.nspname, c.relname
        FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'v', 'm', 'p')
          AND c.relowner <> %s::regrole
          AND (n.nspname = 'read' OR n.nspname IN (SELECT schema_name FROM projection_builds))
        """,
        [roles.projector],
    ).fetchall()
    for schema, relation in relations:
        conn.execute(
            sql.SQL("ALTER TABLE {} OWNER TO {}").format(
                sql.Identifier(schema, relation), projector
            )
        )
    if _one(conn, "SELECT to_regnamespace('read') IS NOT NULL"):
        conn.execute(sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA read TO {}").format(api))


def verify(conn: psycopg.Connection[Any], roles: Roles) -> None:
    """Raise unless neither role can write the ledger or the keys but as the app does."""
    for role in (roles.api, roles.projector):
        for table, rights in FORBIDDEN_TABLE_RIGHTS.items():
            if not _one(conn, "SELECT to_regclass(%s) IS NOT NULL", [table]):
                continue
            if _one(
                conn,
                "SELECT has_table_privilege(%s::name, %s::text, %s::text)",
                [role, table, rights],
            ):
                raise RolesError(
                    f"role {role!r} may still change table {table!r} ({rights}): look for "
                    "grants to PUBLIC or memberships such as pg_write_all_data"
                )
        for column in ("scope", "revoked_at", "secret_hash", "key_id"):
            if _one(conn, "SELECT to_regclass('api_keys') IS NOT NULL") and _one(
                conn,
                "SELECT has_column_privilege(%s::name, 'api_keys', %s::text, 'UPDATE')",
                [role, column],
            ):
                raise RolesError(f"role {role!r} may still change api_keys.{column}")


def _one(conn: psycopg.Connection[Any], query: str, params: list[Any] | None = None) -> Any:
    row = conn.execute(query, params).fetchone()
    return row[0] if row else None
