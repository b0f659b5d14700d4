"""The commands on the PostgreSQL MTA database, over real subprocesses: submit, queue, check
and --repair while nodes may run, `cluster status`, and `migrate` from SQLite into
PostgreSQL and back with every row kept."""

from __future__ import annotations

import json
from pathlib import Path

from pg_server import PgServer
from store_backends import Backend
from test_cli import no_traceback, submit, waypost, write_config

from waypost.store.database import Database
from waypost.store.postgresql.store import NodeSettings, PostgresStore


def pg_config(tmp_path: Path, dsn: str, extra: str = "") -> Path:
    return write_config(tmp_path, f'[store]\nbackend = "postgresql"\ndsn = "{dsn}"\n' + extra)


def queue_json(tmp_path: Path, config: Path) -> list[dict[str, object]]:
    listed = waypost("queue", "list", "--json", "-c", str(config), cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    return [json.loads(line) for line in listed.stdout.splitlines()]


def test_submit_queue_and_check_on_postgresql(tmp_path: Path, pg_dsn: str) -> None:
    config = pg_config(tmp_path, pg_dsn)
    # No MTA database there yet: refused, as for SQLite, unless asked to create it.
    refused = waypost("queue", "list", "-c", str(config), cwd=tmp_path)
    assert refused.returncode == 1 and "no MTA database" in refused.stderr
    no_traceback(refused)
    first = submit(tmp_path, config, "bob@localhost", "carol@localhost")
    second = submit(tmp_path, config, "dave@localhost")
    assert [m["id"] for m in queue_json(tmp_path, config)] == [first, second]
    held = waypost("queue", "hold", str(first), "-c", str(config), cwd=tmp_path)
    assert held.returncode == 0 and "2 recipients changed" in held.stdout, held.stderr
    states = {
        r["address"]: r["state"]
        for m in queue_json(tmp_path, config)
        for r in m["recipients"]  # type: ignore[attr-defined]
    }
    assert states == {
        "bob@localhost": "held",
        "carol@localhost": "held",
        "dave@localhost": "queued",
    }
    clean = waypost("check", "-c", str(config), cwd=tmp_path)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "Messages: 2 checked, 0 bad" in clean.stdout
    assert "SQLite" not in clean.stdout
    # The founding bug, in PostgreSQL: an index into the envelope that points nowhere.
    pg = Backend("postgresql", pg_dsn)
    pg.sql("UPDATE recipients SET rcpt_index = 9 WHERE message_id = ?", (second,))
    found = waypost("check", "-v", "-c", str(config), cwd=tmp_path)
    assert found.returncode == 1, found.stdout
    assert "recipient index 9 is out of range" in found.stdout
    assert f"message {first} ok" in found.stdout  # -v lists every object
    repaired = waypost("check", "--repair", "-c", str(config), cwd=tmp_path)
    assert repaired.returncode == 3, repaired.stdout + repaired.stderr
    assert pg.sql("SELECT state FROM recipients WHERE message_id = ?", (second,)) == [
        ("quarantined",)
    ]
    assert pg.sql("SELECT kind FROM quarantine") == [("recipient",)]
    again = waypost("check", "-c", str(config), cwd=tmp_path)
    assert again.returncode == 0, again.stdout


async def test_check_leaves_a_running_nodes_leases_alone(tmp_path: Path, pg_dsn: str) -> None:
    config = pg_config(tmp_path, pg_dsn)
    submit(tmp_path, config, "bob@localhost")
    node = await PostgresStore.open(pg_dsn, node=NodeSettings(name="live"))
    assert node.owner is not None
    await node.claim(owner=node.owner, limit=10, lease_seconds=600)
    pg = Backend("postgresql", pg_dsn)
    # A lease of a run no node has any more: stale, queued again by --repair.
    later = submit(tmp_path, config, "carol@localhost")
    pg.sql(
        "UPDATE recipients SET state = 'leased', lease_owner = 'gone:1:abc' WHERE message_id = ?",
        (later,),
    )
    checked = waypost("check", "--repair", "-c", str(config), cwd=tmp_path)
    assert checked.returncode == 3, checked.stdout
    stale = [line for line in checked.stdout.splitlines() if "worker that no longer exists" in line]
    assert len(stale) == 1 and "gone:1:abc" in stale[0], checked.stdout
    owners = pg.sql("SELECT lease_owner, state FROM recipients ORDER BY id")
    assert owners == [(node.owner, "leased"), (None, "queued")]
    status = waypost("cluster", "status", "--json", "-c", str(config), cwd=tmp_path)
    assert status.returncode == 0, status.stderr
    (live,) = [json.loads(line) for line in status.stdout.splitlines()]
    assert live["node"] == "live" and live["state"] == "running" and live["leases"] == 1
    await node.close()
    table = waypost("cluster", "status", "-c", str(config), cwd=tmp_path)
    assert "stopped" in table.stdout and "0 of 1 nodes running" in table.stdout


def test_cluster_status_on_sqlite_says_what_is_needed(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    result = waypost("cluster", "status", "-c", str(config), cwd=tmp_path)
    assert result.returncode == 1 and 'backend = "postgresql"' in result.stderr
    no_traceback(result)


def _all_rows(db: Database) -> dict[str, list[tuple[object, ...]]]:
    tables = {
        "messages": "id, mts_id, originator, envelope, size, received_at, expires_at, state",
        "content": "message_id, data",
        "recipients": "id, message_id, rcpt_index, address, next_hop, state, attempts, report",
        "quarantine": "id, kind, object_id, reason, row, data",
    }
    return {
        name: [
            tuple(bytes(v) if isinstance(v, memoryview) else v for v in row)
            for row in db.conn.execute(f"SELECT {columns} FROM {name} ORDER BY 1").fetchall()
        ]
        for name, columns in tables.items()
    }


def test_migrate_to_postgresql_and_back_keeps_every_row(
    tmp_path: Path, pg_server: PgServer
) -> None:
    sqlite_config = write_config(tmp_path)
    for i in range(30):
        submit(tmp_path, sqlite_config, f"user{i}@localhost", "other@localhost")
    db = Database.open(str(tmp_path / "data" / "mta.db"))
    with db.transaction():
        db.claim(2e9, "old-worker", 5, 60)  # five leases the stopped MTA left behind
        db.conn.execute("UPDATE recipients SET attempts = 3, last_error = 'x' WHERE id = 7")
    from waypost.store import quarantine  # noqa: PLC0415

    with db.transaction():
        quarantine.quarantine_message(db.conn, 4, "set aside by the operator", 1e9)
    before = _all_rows(db)
    db.close()

    dsn = pg_server.create_database("migrated")
    moved = waypost("migrate", "--to-postgresql", dsn, "-c", str(sqlite_config), cwd=tmp_path)
    assert moved.returncode == 0, moved.stdout + moved.stderr
    assert "30 messages" in moved.stdout and "60 recipients" in moved.stdout
    assert "5 leased recipients are queued again" in moved.stdout
    pg = Backend("postgresql", dsn)
    pg_db = pg.database()
    in_pg = _all_rows(pg_db)
    pg_db.close()
    leased = {row[0] for row in before["recipients"] if row[5] == "leased"}
    assert len(leased) == 5
    unleased = [
        (*row[:5], "queued", *row[6:]) if row[0] in leased else row for row in before["recipients"]
    ]
    assert in_pg == {**before, "recipients": unleased}
    # A second copy into the same database is refused: it holds rows already.
    again = waypost("migrate", "--to-postgresql", dsn, "-c", str(sqlite_config), cwd=tmp_path)
    assert again.returncode == 1 and "already holds" in again.stderr
    no_traceback(again)

    # New ids in PostgreSQL follow the copied ones.
    back_dir = tmp_path / "back"
    back_dir.mkdir()
    pg_conf = pg_config(back_dir, dsn)
    new_id = submit(back_dir, pg_conf, "new@localhost")
    assert new_id == 31
    copy_path = tmp_path / "copy.db"
    back = waypost("migrate", "--to-sqlite", str(copy_path), "-c", str(pg_conf), cwd=back_dir)
    assert back.returncode == 0, back.stdout + back.stderr
    copy_db = Database.open(str(copy_path))
    in_copy = _all_rows(copy_db)
    copy_db.close()
    pg_db = pg.database()
    assert in_copy == _all_rows(pg_db)
    pg_db.close()
