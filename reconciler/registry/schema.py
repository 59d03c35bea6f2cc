"""The registry schema as an ordered list of migration steps.

Step N brings a database from version N-1 to N. A database records its version
(SQLite: ``PRAGMA user_version``, mirrored in ``meta.schema_version``;
PostgreSQL: ``meta.schema_version``). Opening runs the missing steps, in order,
inside the same transaction that initialises the registry; a database newer
than this code is refused rather than guessed at.

Statements are written once for both backends; ``{blob}`` becomes the binary
column type of the dialect. Append new steps at the end, never edit old ones.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import RegistryError


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    statements: tuple[str, ...]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "accounts, meta, lock, history, contacts", (
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        """CREATE TABLE accounts (
            name TEXT PRIMARY KEY,
            type TEXT NOT NULL,
            spec TEXT NOT NULL,
            applied TEXT NOT NULL,
            fingerprints TEXT NOT NULL,
            applied_fingerprints TEXT NOT NULL,
            secrets {blob},
            status TEXT NOT NULL,
            created TEXT NOT NULL,
            updated TEXT NOT NULL)""",
        """CREATE TABLE lock (
            slot INTEGER PRIMARY KEY CHECK (slot = 1),
            id TEXT NOT NULL,
            holder TEXT NOT NULL,
            host TEXT NOT NULL,
            pid INTEGER NOT NULL,
            started TEXT NOT NULL,
            expires TEXT NOT NULL)""",
        """CREATE TABLE history (
            serial INTEGER PRIMARY KEY,
            time TEXT NOT NULL,
            actor TEXT NOT NULL,
            counts TEXT NOT NULL,
            changes TEXT NOT NULL,
            extra TEXT NOT NULL)""",
        """CREATE TABLE contacts (
            email TEXT PRIMARY KEY,
            details TEXT NOT NULL,
            status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'faulty')),
            soft_bounces TEXT NOT NULL DEFAULT '[]',
            last_bounce TEXT,
            updated TEXT NOT NULL)""",
    )),
    Migration(2, "processed inbox messages; contacts by status", (
        """CREATE TABLE processed_messages (
            account TEXT NOT NULL,
            mailbox TEXT NOT NULL,
            uid TEXT NOT NULL,
            processed_at TEXT NOT NULL,
            PRIMARY KEY (account, mailbox, uid))""",
        "CREATE INDEX contacts_by_status ON contacts (status, email)",
    )),
    Migration(3, "tagged messages sent; unverified bounces", (
        """CREATE TABLE sent_messages (
            tag TEXT PRIMARY KEY,
            account TEXT NOT NULL,
            recipients TEXT NOT NULL,
            sent_at TEXT NOT NULL)""",
        "CREATE INDEX sent_messages_by_time ON sent_messages (sent_at)",
        """CREATE TABLE unverified_bounces (
            email TEXT NOT NULL,
            account TEXT NOT NULL,
            mailbox TEXT NOT NULL,
            uid TEXT NOT NULL,
            kind TEXT NOT NULL,
            status TEXT,
            reason TEXT,
            why TEXT NOT NULL,
            received_at TEXT NOT NULL,
            PRIMARY KEY (account, mailbox, uid, email))""",
        "CREATE INDEX unverified_bounces_by_email ON unverified_bounces (email, received_at)",
        "CREATE INDEX unverified_bounces_by_time ON unverified_bounces (received_at)",
    )),
    Migration(4, "the project managing each account (ownership.name)", (
        # NULL: no project recorded (made before ownership, or by a project without one);
        # '' (policy.RELEASED): let go by `state rm` / a Removed document
        "ALTER TABLE accounts ADD COLUMN owner TEXT",
    )),
    Migration(5, "tags of sent messages keep verifying after a re-key", (
        # JSON list of the tag's MACs under earlier keys (registry rekey writes them)
        "ALTER TABLE sent_messages ADD COLUMN prior_macs TEXT",
    )),
    Migration(6, "the event log, provider event ids, webhook deliveries; when contacts "
                 "became faulty (issue 14)", (
        """CREATE TABLE events (
            seq INTEGER PRIMARY KEY,
            id TEXT NOT NULL UNIQUE,
            time TEXT NOT NULL,
            kind TEXT NOT NULL,
            email TEXT,
            account TEXT,
            source TEXT,
            data TEXT NOT NULL)""",
        "CREATE INDEX events_by_email ON events (email, seq)",
        "CREATE INDEX events_by_time ON events (time)",
        """CREATE TABLE provider_events (
            provider TEXT NOT NULL,
            event_id TEXT NOT NULL,
            received_at TEXT NOT NULL,
            PRIMARY KEY (provider, event_id))""",
        """CREATE TABLE webhook_deliveries (
            webhook TEXT NOT NULL,
            seq INTEGER NOT NULL,
            email TEXT,
            state TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            next_at TEXT NOT NULL,
            last_error TEXT,
            updated TEXT NOT NULL,
            PRIMARY KEY (webhook, seq))""",
        "CREATE INDEX webhook_deliveries_by_state ON webhook_deliveries (state, next_at)",
        "CREATE TABLE webhook_cursors (webhook TEXT PRIMARY KEY, seq INTEGER NOT NULL)",
        "ALTER TABLE contacts ADD COLUMN faulty_since TEXT",
    )),
    Migration(7, "the proxy's delivery log and failed-login throttle (issue 12)", (
        """CREATE TABLE delivery_log (
            id TEXT PRIMARY KEY,
            account TEXT NOT NULL,
            message_id TEXT,
            mail_from TEXT NOT NULL,
            recipients TEXT NOT NULL,
            upstream_reply TEXT,
            size INTEGER NOT NULL,
            client TEXT,
            started TEXT NOT NULL,
            finished TEXT NOT NULL)""",
        "CREATE INDEX delivery_log_by_account ON delivery_log (account, finished)",
        "CREATE INDEX delivery_log_by_time ON delivery_log (finished)",
        """CREATE TABLE login_throttle (
            client TEXT PRIMARY KEY,
            window_start BIGINT NOT NULL,
            attempts INTEGER NOT NULL,
            failures INTEGER NOT NULL DEFAULT 0)""",
    )),
    Migration(8, "status conditions per account: Verified, InboxScanned, Applied, Drifted "
                 "(issue 13)", (
        """CREATE TABLE conditions (
            subject TEXT NOT NULL,
            type TEXT NOT NULL,
            status TEXT NOT NULL,
            reason TEXT NOT NULL,
            message TEXT NOT NULL,
            observed TEXT NOT NULL,
            last_transition TEXT NOT NULL,
            last_probe TEXT NOT NULL,
            PRIMARY KEY (subject, type))""",
    )),
    Migration(9, "the changes of a large apply, one row each (issue 16)", (
        # history.changes then holds [] and history.extra {"changes_stored": N}
        """CREATE TABLE history_changes (
            serial INTEGER NOT NULL,
            seq INTEGER NOT NULL,
            body TEXT NOT NULL,
            PRIMARY KEY (serial, seq))""",
    )),
    Migration(10, "the inbox scanner's UIDVALIDITY and last UID seen per mailbox (issue 13)", (
        """CREATE TABLE scan_state (
            account TEXT NOT NULL,
            mailbox TEXT NOT NULL,
            uidvalidity TEXT NOT NULL,
            last_uid BIGINT NOT NULL,
            updated TEXT NOT NULL,
            PRIMARY KEY (account, mailbox))""",
    )),
)

LATEST = MIGRATIONS[-1].version


def pending(current: int, migrations: tuple[Migration, ...] = MIGRATIONS,
            where: str = "") -> list[Migration]:
    """The steps still to run on a database at ``current``; refuse a newer database."""
    latest = migrations[-1].version if migrations else 0
    if current > latest:
        raise RegistryError(
            f"the registry {where} has schema version {current}, newer than this mailform "
            f"understands (up to {latest}); upgrade mailform to use it".replace("  ", " "))
    return [m for m in migrations if m.version > current]


def check_order(migrations: tuple[Migration, ...] = MIGRATIONS) -> None:
    versions = [m.version for m in migrations]
    if versions != list(range(1, len(versions) + 1)):
        raise RegistryError(f"migration steps out of order: {versions}")
