"""`vtm ftp serve`: a small FTP server for the registry, for teams that have none."""
from __future__ import annotations

import sys
from pathlib import Path

from vtm_tui.commands import EXIT_OK
from vtm_tui.errors import UserError
from vtm_tui.settings import Settings


def cmd_ftp(args, settings: Settings) -> int:
    from vtm_tui.core.registry import ftp_server

    password = settings.value(args.password_env)
    if not password:
        raise UserError(f"set {args.password_env} to the password FTP clients will log in with "
                        f"(or name another variable with --password-env)")
    users = [ftp_server.FtpUser(args.user, password, writable=not args.read_only)]
    if args.read_only_user:
        ro_password = settings.value(args.read_only_password_env)
        if not ro_password:
            raise UserError(f"--read-only-user needs {args.read_only_password_env} (its password)")
        if args.read_only_user == args.user:
            raise UserError("--read-only-user must differ from --user")
        users.append(ftp_server.FtpUser(args.read_only_user, ro_password, writable=False))
    root = Path(args.root).expanduser() if args.root else settings.home / "registry"
    root = root if root.is_absolute() else settings.workdir / root
    if not ftp_server.is_loopback(args.host):
        print(f"warning: serving plain FTP on {args.host}: passwords and models cross the network "
              f"unencrypted; prefer 127.0.0.1 and an SSH tunnel", file=sys.stderr)

    def ready(host: str, port: int) -> None:
        shown = f"[{host}]" if ":" in host else host
        print(f"serving {root} at ftp://{args.user}@{shown}:{port}/ "
              f"({'read-only' if args.read_only else 'read-write'}"
              + (f", read-only user {args.read_only_user}" if args.read_only_user else "")
              + "); Ctrl-C stops", flush=True)
        print(f"  clients: VTM_REGISTRY_URL=ftp://{args.user}@{shown}:{port}/ and {args.password_env}",
              flush=True)

    ftp_server.run(root, users, args.host, args.port, ready=ready)
    print("FTP server stopped", flush=True)
    return EXIT_OK


def register(sub) -> None:
    ftp = sub.add_parser("ftp", help="a small FTP server for the model registry")
    ftp_sub = ftp.add_subparsers(dest="ftp_action", metavar="ACTION", required=True)
    serve = ftp_sub.add_parser("serve", help="serve a folder over FTP (aioftp) until Ctrl-C")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: loopback only)")
    serve.add_argument("--port", type=int, default=2121, help="port (default 2121; 0 picks a free one)")
    serve.add_argument("--root", help="folder to serve (default: <VTM_HOME>/registry)")
    serve.add_argument("--user", default="vtm", help="login name (default: vtm)")
    serve.add_argument("--password-env", default="VTM_FTP_PASSWORD", metavar="VAR",
                       help="environment variable holding the password (default: VTM_FTP_PASSWORD)")
    serve.add_argument("--read-only", action="store_true", help="the user may read but not write")
    serve.add_argument("--read-only-user", metavar="NAME", help="also accept this user, read-only")
    serve.add_argument("--read-only-password-env", default="VTM_FTP_RO_PASSWORD", metavar="VAR")
    ftp.set_defaults(handler=cmd_ftp)
