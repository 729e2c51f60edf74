"""``python -m pausegate.state export DIR``: the state database's logs as files, checked.

Writes the refusal log and the users' change log of the shared state database (``api.state =
"postgres"``) as the file logs are written (``api-refusals.jsonl``, ``users-log.jsonl``, each with its
signed head), then checks them with the file logs' own check and prints every problem; exits 1 when
there is any. The files are what an auditor keeps: they verify without the database.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pausegate.api.refusal_log import RefusalEntry, RefusalLog
from pausegate.auth.user_log import UserChange
from pausegate.config import load_settings
from pausegate.state.chain import PgChain
from pausegate.state.database import StateDatabase
from pausegate.state.refusals import LOG_NAME as REFUSALS
from pausegate.state.users import LOG_NAME as USERS


def export(directory: Path, config: Path | None) -> int:
    settings = load_settings(config)
    if settings.api.state != "postgres" or settings.api.state_db is None:
        print('this deployment keeps its logs in files (api.state = "files"): nothing to export')
        return 2
    from pausegate.evidence.open_store import open_evidence_store

    key = open_evidence_store(settings.evidence).signing_key
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    found: list[str] = []
    with StateDatabase(settings.api.state_db) as db, db.sync_pool.connection() as conn:
        for name, file_name, parse, what in (
            (REFUSALS, "api-refusals.jsonl", RefusalEntry.model_validate, "a refusal entry"),
            (USERS, "users-log.jsonl", UserChange.model_validate, "a user change"),
        ):
            path = directory / file_name
            PgChain(name, key).export(conn, path)
            problems = RefusalLog(path, key).chain_problems(parse, what)
            lines = sum(1 for _ in path.open("rb"))
            print(f"{path}: {lines} lines, {'intact' if not problems else f'{len(problems)} problems'}")
            found += problems
    for problem in found:
        print(f"  {problem}")
    return 1 if found else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pausegate.state", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    exporting = sub.add_parser("export", help="write the logs as files into DIR and check them")
    exporting.add_argument("directory", type=Path, metavar="DIR")
    exporting.add_argument("--config", type=Path, help="configuration file (default: $PAUSEGATE_CONFIG)")
    args = parser.parse_args(argv)
    return export(args.directory, args.config)


if __name__ == "__main__":
    raise SystemExit(main())
