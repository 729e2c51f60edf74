"""``python -m pausegate.api --openapi FILE``: write the OpenAPI document.

Serving is the top module's (``python -m pausegate.app`` or ``pausegate api``): it mounts the console,
which the API does not know.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from pausegate.config import Settings


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
    args = parser.parse_args(argv)
    if args.openapi:
        text = json.dumps(openapi_document(), indent=2, sort_keys=True) + "\n"
        if str(args.openapi) == "-":
            print(text, end="")
        else:
            args.openapi.write_text(text)
        return 0
    parser.print_help()
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
