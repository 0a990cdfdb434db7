"""``leadflow``: the command line for marketing-ops admins, a client of the services' admin APIs.

Exit codes: 0 done, 1 the API refused or a service could not be reached, 2 usage (bad flags or
input file; nothing was sent), 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import TextIO

import httpx

from leadflow_cli.client import DEV_API_KEY, SERVICES, Api, ApiError, ServiceUnreachable, default_api_key, default_url
from leadflow_cli.commands import Builder, Handler, add_all
from leadflow_cli.inputs import UsageError
from leadflow_cli.render import render

EPILOG = f"""\
Service URLs come from --<service>-url or LEADFLOW_<SERVICE>_URL (default: http://127.0.0.1:8001..8005, as
'make up' serves capture, enrichment, scoring, routing, sla). The API key comes from --api-key or
LEADFLOW_API_KEY; when neither is set the development key '{DEV_API_KEY}' of 'make up' is used, which no
production service accepts.

examples:
  leadflow forms list
  leadflow forms apply -f form.json
  leadflow scoring-models dry-run -f model.yaml --last-n 200
  leadflow reps update rep-ada --territories US-CA,US-WA --weight 2
  leadflow webhooks create --url https://crm.example.com/hooks --event-type lead.routed
  leadflow export > config.json && leadflow import config.json --dry-run
"""


def common_options() -> argparse.ArgumentParser:
    """Options every command takes, before or after its name (``leadflow --json forms list`` and
    ``leadflow forms list --json`` alike). Defaults are filled in after parsing, so a later,
    unset copy never overwrites an earlier, set one."""
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("connection and output")
    group.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                       help="print the API's JSON instead of tables")
    group.add_argument("--api-key", default=argparse.SUPPRESS, metavar="KEY",
                       help=f"admin API key (env LEADFLOW_API_KEY; default '{DEV_API_KEY}', the dev key)")
    group.add_argument("--timeout", type=float, default=argparse.SUPPRESS, metavar="SECONDS",
                       help="per request (default 10)")
    for service, port in SERVICES.items():
        group.add_argument(f"--{service}-url", default=argparse.SUPPRESS, metavar="URL",
                           help=f"env LEADFLOW_{service.upper()}_URL; default http://127.0.0.1:{port}")
    return common


def build_parser() -> argparse.ArgumentParser:
    common = common_options()
    parser = argparse.ArgumentParser(
        prog="leadflow", description="Administer LeadFlow through its services' admin APIs.", epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter, parents=[common])
    parser.add_argument("--version", action="version", version=f"leadflow {cli_version()}")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    add_all(Builder(sub, common))
    return parser


def cli_version() -> str:
    try:
        return version("leadflow-cli")
    except PackageNotFoundError:  # a source tree that was never installed
        return "0+unknown"


def connection(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> tuple[dict[str, str], str, float]:
    urls = {s: getattr(args, f"{s}_url", None) or default_url(s, env) for s in SERVICES}
    for service, url in urls.items():
        parsed = httpx.URL(url)
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise UsageError(f"--{service}-url must be an http(s) URL, not {url!r}")
    key = getattr(args, "api_key", None) or default_api_key(env)
    return urls, key, getattr(args, "timeout", 10.0)


def main(argv: Sequence[str] | None = None, *, transport: httpx.BaseTransport | None = None,
         env: Mapping[str, str] | None = None, stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    as_json = getattr(args, "json", False)
    try:
        urls, key, timeout = connection(args, env)
        with Api(urls, key, timeout=timeout, transport=transport) as api:
            handler: Handler = args.handler
            output = handler(api, args)
    except UsageError as exc:
        print(f"leadflow: error: {exc}", file=err)
        return 2
    except (ApiError, ServiceUnreachable) as exc:
        print(f"leadflow: {exc}", file=err)
        return 1
    except KeyboardInterrupt:
        print("leadflow: interrupted", file=err)
        return 130
    text = render(output, as_json=as_json)
    if text:
        print(text, file=out)
    if output.error:
        print(f"leadflow: {output.error}", file=err)
    return output.exit_code


if __name__ == "__main__":
    sys.exit(main())
