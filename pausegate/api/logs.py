"""``python -m pausegate.api.logs export DIR``: the API database's signed logs as files, checked.

Writes the refusal log and the users' change log kept in the API's database (``api.state =
"postgres"``) as the file logs are written (``api-refusals.jsonl``, ``users-log.jsonl``, each with its
signed head), then checks them with the file logs' own check, held to the heads anchored in the
evidence store, and prints every problem; exits 1 when there is any. The files are what an auditor
keeps: they verify without the database.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pausegate.api.backends import open_backends
from pausegate.api.refusal_log import LOG_NAME as REFUSALS
from pausegate.api.refusal_log import RefusalLog
from pausegate.auth.users.log import LOG_NAME as USERS
from pausegate.auth.users.log import user_log
from pausegate.config import load_settings
from pausegate.records.anchors import HeadAnchors
from pausegate.records.files import FileMedium
from pausegate.records.postgres import PgMedium


def export(directory: Path, config: Path | None) -> int:
    settings = load_settings(config)
    db = open_backends(settings).database
    if db is None:
        print('this deployment keeps its logs in files (api.state = "files"): nothing to export')
        return 2
    from pausegate.evidence.open_store import open_evidence_store

    store = open_evidence_store(settings.evidence)
    key = store.signing_key
    # The copies are held to the heads anchored in the evidence store too: a log cut back in the
    # database with its saved head put back exports as a file that agrees with itself.
    anchors = HeadAnchors(lambda: store)
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    found: list[str] = []
    with db:
        for name, file_name in ((REFUSALS, "api-refusals.jsonl"), (USERS, "users-log.jsonl")):
            target = FileMedium(directory / file_name)
            PgMedium(db.sync_pool.connection, name).export(target)
            anchor = anchors.log(name)
            problems = (RefusalLog(target, key, anchor=anchor) if name == REFUSALS
                        else user_log(target, key, anchor=anchor)).problems()
            lines = sum(1 for _ in target.path.open("rb"))
            print(f"{target.path}: {lines} lines, {'intact' if not problems else f'{len(problems)} problems'}")
            found += problems
    for problem in found:
        print(f"  {problem}")
    return 1 if found else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pausegate.api.logs", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    exporting = sub.add_parser("export", help="write the logs as files into DIR and check them")
    exporting.add_argument("directory", type=Path, metavar="DIR")
    exporting.add_argument("--config", type=Path, help="configuration file (default: $PAUSEGATE_CONFIG)")
    args = parser.parse_args(argv)
    return export(args.directory, args.config)


if __name__ == "__main__":
    raise SystemExit(main())
