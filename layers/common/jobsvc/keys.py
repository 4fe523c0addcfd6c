"""Operator command: create and revoke API keys in a deployed table.

    python -m jobsvc.keys create --organization acme --user alice [--name ci] [--table T] [--region R]
    python -m jobsvc.keys revoke --key jsk_...   (or --key-id <sha256 hex>)

Uses the usual AWS credentials chain. A new key is printed once; only its
SHA-256 hash (printed as the key id) is stored.
"""
from __future__ import annotations

import argparse
import os
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jobsvc.keys", description=__doc__.split("\n")[0])
    parser.add_argument("--table", default=os.environ.get("TABLE_NAME"), help="table name (stack output TableName)")
    parser.add_argument("--region", default=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"))
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create", help="create a key and print it once")
    create.add_argument("--organization", required=True)
    create.add_argument("--user", required=True)
    create.add_argument("--name", default=None, help="a label for the key")
    revoke = commands.add_parser("revoke", help="revoke a key")
    which = revoke.add_mutually_exclusive_group(required=True)
    which.add_argument("--key")
    which.add_argument("--key-id", help="the SHA-256 hex printed at creation")
    args = parser.parse_args(argv)

    if not args.table:
        parser.error("--table (or TABLE_NAME) is required")
    os.environ["TABLE_NAME"] = args.table
    if args.region:
        os.environ["AWS_REGION"] = args.region
    from . import auth  # reads the configuration set just above

    if args.command == "create":
        if not args.organization.strip() or not args.user.strip():
            parser.error("--organization and --user must not be empty")
        try:
            key = auth.create_key(args.organization, args.user, name=args.name)
        except ValueError as exc:
            parser.error(str(exc))
        print(f"key:    {key}")
        print(f"key id: {auth.hash_key(key)}")
        print("Store the key now: it is not shown again.", file=sys.stderr)
        return 0
    if auth.revoke_key(args.key or args.key_id):
        print("revoked")
        return 0
    print("no such key", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
