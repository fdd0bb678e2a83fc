"""What the SQL backends share: the schema, the statements, row conversion and the migration rule.

SQLite and PostgreSQL differ in a few type names and in how a numbered parameter is spelt (`?1` /
`$1`); `Dialect` holds those differences and `Statements` builds every statement once from them,
so the two backends cannot drift apart.
"""

from __future__ import annotations

import hmac
import json
from dataclasses import dataclass
from typing import Any, Sequence

from bootserver.boot.machine import Event, MachineRecord
from bootserver.state.base import SchemaTooNew, StateChanged, StoreError, TokenSpent, UnknownMachine
from bootserver.state.updates_sql import migration as update_migration

MACHINE_COLUMNS = ("mac", "state", "token", "name", "profile", "arch", "uuid", "vendor", "interface",
                   "client_ip", "first_seen", "last_seen", "state_changed")
MACHINE_SELECT = ", ".join(MACHINE_COLUMNS)
#: Facts a later sighting may fill in; a None keeps what is known (COALESCE).
UPDATABLE_FACTS = ("name", "profile", "arch", "uuid", "vendor", "interface", "client_ip")


@dataclass(frozen=True)
class Dialect:
    parameter: str  # prefix of a numbered parameter: "?" (SQLite ?1) or "$" (PostgreSQL $1)
    real: str  # floating point column type
    seq: str  # auto-incrementing primary key column definition
    json: str  # column type for the JSON detail
    json_in: str  # cast of a JSON text parameter on insert
    json_out: str  # expression reading the detail back as text

    def p(self, number: int) -> str:
        return f"{self.parameter}{number}"


SQLITE = Dialect("?", "REAL", "INTEGER PRIMARY KEY AUTOINCREMENT", "TEXT", "", "detail")
POSTGRES = Dialect("$", "DOUBLE PRECISION", "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY", "JSONB", "::jsonb",
                   "detail::text")


class Statements:
    """Every statement a backend runs, in its dialect."""

    def __init__(self, d: Dialect) -> None:
        p = d.p
        self.migrations: list[tuple[int, list[str]]] = [
            (1, [
                f"""CREATE TABLE machines (
                     mac TEXT PRIMARY KEY, state TEXT NOT NULL, token TEXT NOT NULL UNIQUE,
                     name TEXT, profile TEXT, arch TEXT, uuid TEXT, vendor TEXT, interface TEXT, client_ip TEXT,
                     first_seen {d.real} NOT NULL, last_seen {d.real} NOT NULL, state_changed {d.real} NOT NULL)""",
                "CREATE INDEX machines_state ON machines (state)",
                f"""CREATE TABLE events (
                     seq {d.seq}, mac TEXT NOT NULL, kind TEXT NOT NULL,
                     source TEXT, detail {d.json} NOT NULL DEFAULT '{{}}', at {d.real} NOT NULL)""",
                "CREATE INDEX events_mac_seq ON events (mac, seq)",
            ]),
            (2, update_migration(d.real)),
            (3, [  # installer events carry an idempotency key: a retried POST is not a second event
                "ALTER TABLE events ADD COLUMN event_key TEXT",
                "CREATE UNIQUE INDEX events_mac_key ON events (mac, event_key) WHERE event_key IS NOT NULL",
            ]),
        ]
        self.insert_event = (f"INSERT INTO events (mac, kind, source, detail, at, event_key) "
                             f"VALUES ({p(1)}, {p(2)}, {p(3)}, {p(4)}{d.json_in}, {p(5)}, {p(6)}) "
                             "ON CONFLICT (mac, event_key) WHERE event_key IS NOT NULL DO NOTHING")
        self.insert_event_seq = self.insert_event + " RETURNING seq"  # no row: the key was already there
        self.event_key_seen = f"SELECT 1 FROM events WHERE mac = {p(1)} AND event_key = {p(2)}"
        self.trim_events = (f"DELETE FROM events WHERE mac = {p(1)} AND seq <= "
                            f"(SELECT seq FROM events WHERE mac = {p(1)} ORDER BY seq DESC LIMIT 1 OFFSET {p(2)})")
        self.select_events = (f"SELECT seq, mac, kind, source, {d.json_out}, at, event_key FROM events "
                              f"WHERE mac = {p(1)} AND seq < {p(2)} ORDER BY seq DESC LIMIT {p(3)}")
        self.upsert_machine = (
            f"INSERT INTO machines ({MACHINE_SELECT}) "
            f"VALUES ({', '.join(p(i) for i in range(1, len(MACHINE_COLUMNS) + 1))}) "
            "ON CONFLICT (mac) DO UPDATE SET "
            + ", ".join(f"{c} = COALESCE(excluded.{c}, machines.{c})" for c in UPDATABLE_FACTS)
            + f", last_seen = excluded.last_seen RETURNING {MACHINE_SELECT}")
        self.machine_by_mac = f"SELECT {MACHINE_SELECT} FROM machines WHERE mac = {p(1)}"
        self.machine_by_token = f"SELECT {MACHINE_SELECT} FROM machines WHERE token = {p(1)}"
        self.all_machines = f"SELECT {MACHINE_SELECT} FROM machines ORDER BY mac"
        self.machines_in_state = f"SELECT {MACHINE_SELECT} FROM machines WHERE state = {p(1)} ORDER BY mac"
        self.set_state = (f"UPDATE machines SET state = {p(1)}, state_changed = {p(2)} WHERE mac = {p(3)} "
                          f"RETURNING {MACHINE_SELECT}")
        #: compare-and-set: moves the machine only if it is still in the state the caller saw
        self.set_state_if = (f"UPDATE machines SET state = {p(1)}, state_changed = {p(2)} "
                             f"WHERE mac = {p(3)} AND state = {p(4)} RETURNING {MACHINE_SELECT}")
        self.state_of = f"SELECT state FROM machines WHERE mac = {p(1)}"
        #: a new installer token (a reinstall)
        self.rotate_token = (f"UPDATE machines SET token = {p(1)} WHERE mac = {p(2)} RETURNING {MACHINE_SELECT}")
        #: a final report spends the token: only while it is still the machine's, in the state decided from
        self.spend_token = (f"UPDATE machines SET token = {p(1)} WHERE mac = {p(2)} AND token = {p(3)} "
                            f"AND state = {p(4)} RETURNING {MACHINE_SELECT}")
        self.token_and_state_of = f"SELECT token, state FROM machines WHERE mac = {p(1)}"
        self.delete_events = f"DELETE FROM events WHERE mac = {p(1)}"
        self.delete_machine = f"DELETE FROM machines WHERE mac = {p(1)}"


def new_machine_row(mac: str, state: str, token: str, now: float, facts: dict[str, Any]) -> tuple:
    """The parameters of `upsert_machine`, in MACHINE_COLUMNS order."""
    values = {c: facts.get(c) for c in MACHINE_COLUMNS}
    values.update(mac=mac, state=state, token=token, first_seen=now, last_seen=now, state_changed=now)
    return tuple(values[c] for c in MACHINE_COLUMNS)


def machine_from_row(row: Sequence[Any]) -> MachineRecord:
    return MachineRecord(*row)


def event_from_row(row: Sequence[Any]) -> Event:
    seq, mac, kind, source, detail, at, key = row
    return Event(mac=mac, kind=kind, source=source, detail=json.loads(detail) if detail else {}, at=at, seq=seq,
                 key=key)


def event_row(event: Event) -> tuple:
    """The parameters of `insert_event`."""
    return event.mac, event.kind, event.source, detail_json(event.detail), event.at, event.key


def detail_json(detail: dict[str, Any]) -> str:
    return json.dumps(detail or {}, separators=(",", ":"), sort_keys=True, default=str)


def not_spent(mac: str, token: str, expected: str, found: Sequence[Any] | None) -> StoreError | KeyError:
    """Why `spend_token` matched no row, from the machine's (token, state) read in the same
    transaction (None: no such machine)."""
    if found is None:
        return UnknownMachine(mac)
    if not hmac.compare_digest(found[0].encode(), token.encode()):
        return TokenSpent(mac)
    return StateChanged(mac, expected, found[1])


def pending_migrations(current: int, migrations: Sequence[tuple[int, Any]], where: str) -> list[tuple[int, Any]]:
    """The migrations still to apply; refuses a database written by a newer bootserver."""
    latest = migrations[-1][0]
    if current > latest:
        raise SchemaTooNew(
            f"state database {where} has schema version {current}, but this bootserver knows versions up to "
            f"{latest}: a newer bootserver has upgraded it. Run that newer bootserver, or point the `state` "
            f"setting at another database. Nothing was changed.")
    return [m for m in migrations if m[0] > current]
