"""The `hub` command line: serve, db upgrade, token, cert."""

from __future__ import annotations

import argparse
import logging
import sys

from hub.config import ConfigError, load_config


def _add_config(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="TOML configuration file (default: configs/default.toml)",
    )


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 < port < 65536:
        raise argparse.ArgumentTypeError(f"port {port} is out of range 1-65535")
    return port


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hub",
        description="Video-conferencing and command-dispatch hub for "
        "social-governance command centres.",
    )
    parser.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="logging level (default: INFO)",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the hub (HTTP, WebSocket, media)")
    _add_config(serve)
    serve.add_argument("--host", help="address to listen on (overrides server.host)")
    serve.add_argument(
        "--port", type=_port, help="TCP port, 1-65535 (overrides server.port)"
    )

    cert = commands.add_parser(
        "cert", help="make a self-signed TLS certificate for a LAN trial"
    )
    _add_config(cert)
    cert.add_argument(
        "--name",
        action="append",
        default=[],
        metavar="HOST",
        help="host name or IP address the certificate is for (repeatable)",
    )

    db = commands.add_parser("db", help="database schema")
    db_commands = db.add_subparsers(dest="db_command", metavar="ACTION")
    upgrade = db_commands.add_parser(
        "upgrade", help="create or upgrade the schema to the latest version"
    )
    _add_config(upgrade)

    token = commands.add_parser("token", help="mint a signed access token")
    _add_config(token)
    token.add_argument("--user", required=True, help="user id, e.g. zhang.wei")
    token.add_argument("--unit", required=True, help="unit id from the org tree")
    token.add_argument("--role", required=True, help="role, e.g. chair or dispatcher")
    token.add_argument("--room", help="room the token is limited to (default: any)")
    token.add_argument("--name", help="display name (default: the user id)")
    token.add_argument(
        "--hours",
        type=float,
        default=12.0,
        help="hours until the token expires (default: 12)",
    )
    token.add_argument(
        "--device",
        action="store_true",
        help="long-lived token for a command-room device (365 days)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if args.log_level != "DEBUG":
        # Libraries that log routine steps at INFO (schema plugins, every ICE
        # candidate pair): only their warnings matter to an operator.
        for name in ("alembic", "aioice"):
            logging.getLogger(name).setLevel(logging.WARNING)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        config = load_config(getattr(args, "config", None))
    except ConfigError as exc:
        print(f"hub: {exc}", file=sys.stderr)
        return 2

    if args.command == "serve":
        from hub.server import serve

        if args.host:
            config.server.host = args.host
        if args.port:
            config.server.port = args.port
        return serve(config)
    if args.command == "cert":
        from hub.tls import make_self_signed

        cert, key = make_self_signed(config, args.name or ["localhost", "127.0.0.1"])
        print(f"certificate: {cert}\nkey:         {key}")
        print("Set server.tls_cert and server.tls_key to these paths to serve HTTPS.")
        return 0
    if args.command == "db":
        if args.db_command != "upgrade":
            parser.parse_args(["db", "--help"])
            return 2
        from dispatch.db import upgrade

        upgrade(config.database_url)
        print(f"database schema is up to date: {config.database_url}")
        return 0
    if args.command == "token":
        from hub.auth import mint_token_from_cli

        try:
            print(mint_token_from_cli(config, args))
        except ValueError as exc:
            print(f"hub token: {exc}", file=sys.stderr)
            return 2
        return 0
    parser.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
