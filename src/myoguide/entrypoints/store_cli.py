"""The store's commands: migrate, backup, restore, user, record verify and feedback report."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, TextIO

from myoguide.entrypoints.exits import EXIT_OK, EXIT_TAMPERED
from myoguide.errors import InputError

if TYPE_CHECKING:
    import argparse

    from myoguide.bootstrap import ServeConfig


def _store(args: argparse.Namespace) -> ServeConfig:
    """Return the store's configuration from a command's --data-dir and --database-url."""
    from myoguide.entrypoints.operations import store_config

    return store_config(args.data_dir, args.database_url)


def cmd_migrate(args: argparse.Namespace, out: TextIO) -> int:
    """Run the store's migrations on the configured database."""
    from myoguide.entrypoints.operations import migrate

    out.write(migrate(_store(args)) + "\n")
    return EXIT_OK


def cmd_backup(args: argparse.Namespace, out: TextIO) -> int:
    """Write an online backup of a SQLite store and the chains' head file into a new folder."""
    from pathlib import Path

    from myoguide.entrypoints.operations import backup

    out.write(backup(_store(args), Path(args.path)) + "\n")
    return EXIT_OK


def cmd_restore(args: argparse.Namespace, out: TextIO) -> int:
    """Restore a backup folder; exit 4 if the restored record does not verify."""
    from pathlib import Path

    from myoguide.entrypoints.operations import restore

    ok, report = restore(_store(args), Path(args.path), force=args.force)
    out.write(report + "\n")
    return EXIT_OK if ok else EXIT_TAMPERED


def cmd_feedback_report(args: argparse.Namespace, out: TextIO) -> int:
    """Print acceptance and override rates by card and reason from the feedback store."""
    from myoguide.bootstrap import feedback_report

    out.write(feedback_report(_store(args)) + "\n")
    return EXIT_OK


def _read_password() -> str:
    import getpass

    if sys.stdin.isatty():
        password = getpass.getpass("Password (12 characters or more): ")
        if getpass.getpass("Again: ") != password:
            raise InputError("password", "the two entries differ")
        return password
    return sys.stdin.readline().rstrip("\n")


def cmd_user(args: argparse.Namespace, out: TextIO) -> int:
    """Create an account or change its password (ending its sessions); password from stdin."""
    from myoguide.bootstrap import change_password, record_stores

    password = _read_password()
    config = _store(args)
    try:
        if args.what == "passwd":
            change_password(config, args.username, password)
            out.write(f"password of '{args.username}' changed; its sessions are ended\n")
            return EXIT_OK
        _, users = record_stores(config)
        users.add_user(args.username, password)
    except (ValueError, LookupError) as exc:
        text = str(exc)
        raise InputError("password" if text.startswith("password") else "username", text) from None
    out.write(f"account '{args.username}' created\n")
    return EXIT_OK


def cmd_record_verify(args: argparse.Namespace, out: TextIO) -> int:
    """Walk the record's hash chains; exit 4 naming the first broken link."""
    from myoguide.bootstrap import verify_record

    ok, report = verify_record(_store(args))
    out.write(report + "\n")
    return EXIT_OK if ok else EXIT_TAMPERED


def store_options(parser: argparse.ArgumentParser) -> None:
    """Add --data-dir and --database-url, each over its environment variable."""
    parser.add_argument(
        "--data-dir", default=None, help="data folder (MYOGUIDE_DATA_DIR; default data)"
    )
    parser.add_argument(
        "--database-url",
        default=None,
        help="SQLAlchemy URL (MYOGUIDE_DATABASE_URL or DATABASE_URL; "
        "default SQLite under the data folder)",
    )


def add_store_commands(sub: Any) -> None:
    """Add `user`, `feedback`, `record`, `migrate`, `backup` and `restore` to the parser."""
    user = sub.add_parser("user", help="manage sign-in accounts for the clinician's page")
    user.add_argument("what", choices=["add", "passwd"])
    user.add_argument("username")
    store_options(user)
    user.set_defaults(func=cmd_user)
    feedback = sub.add_parser("feedback", help="CDS Hooks feedback")
    feedback.add_argument("what", choices=["report"])
    store_options(feedback)
    feedback.set_defaults(func=cmd_feedback_report)
    # "record", not "audit": `myoguide audit` is the population audit.
    record = sub.add_parser("record", help="check the patient record store")
    record.add_argument("what", choices=["verify"])
    store_options(record)
    record.set_defaults(func=cmd_record_verify)

    mig = sub.add_parser("migrate", help="run the store's migrations on the configured database")
    store_options(mig)
    mig.set_defaults(func=cmd_migrate)
    bak = sub.add_parser(
        "backup", help="online backup of a SQLite store and its chain head into a new folder"
    )
    bak.add_argument("path", metavar="PATH", help="folder to create (absent or empty)")
    store_options(bak)
    bak.set_defaults(func=cmd_backup)
    res = sub.add_parser(
        "restore", help="put a `myoguide backup` folder back (the service stopped)"
    )
    res.add_argument("path", metavar="PATH", help="folder written by `myoguide backup`")
    res.add_argument("--force", action="store_true", help="replace a store that holds data")
    store_options(res)
    res.set_defaults(func=cmd_restore)
