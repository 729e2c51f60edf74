"""``python -m pausegate.api``: write the OpenAPI document, or serve the API against the configured Temporal.

python -m pausegate.api --openapi docs/api-openapi.json
python -m pausegate.api --serve [--config FILE]

Serving is ``pausegate.app.run`` (the API with the console mounted, as ``pausegate api`` serves it): this
entry point is a script that no module imports, so reaching the top module from here makes no circle.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
from pathlib import Path
from typing import Any

from pausegate.config import Settings, load_settings


def openapi_document() -> dict[str, Any]:
    """The published OpenAPI document (built without Temporal or any file)."""
    from pausegate.api.app import create_app
    from pausegate.auth import CombinedAuthenticator

    app = create_app(Settings(), client=None, authenticator=CombinedAuthenticator(None, None))  # type: ignore[arg-type]
    return app.openapi()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pausegate.api",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--openapi", type=Path, metavar="FILE", help="write the OpenAPI document to FILE ('-': stdout)")
    parser.add_argument("--serve", action="store_true", help="serve the API")
    parser.add_argument("--config", type=Path, help="configuration file (default: $PAUSEGATE_CONFIG)")
    args = parser.parse_args(argv)
    if args.openapi:
        text = json.dumps(openapi_document(), indent=2, sort_keys=True) + "\n"
        if str(args.openapi) == "-":
            print(text, end="")
        else:
            args.openapi.write_text(text)
        return 0
    if args.serve:
        from pausegate.app import run

        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(run(load_settings(args.config)))
        return 0
    parser.print_help()
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
