"""The aioftp client of the FTP registry, with what aioftp 0.28.3 lacks for servers in the wild.

1. TLS on data connections after the transfer command. With PROT P, aioftp's own transfers
   finish the data connection's TLS handshake before they send LIST/STOR/RETR. Debian's vsftpd
   (3.0.3, default `require_ssl_reuse=YES`) starts TLS on a data connection only once it has the
   command, so such a transfer hangs until the timeout (measured against the tests' vsftpd:
   tests/core/test_ftp_servers.py keeps the recipe). Here the data connection opens in plain
   TCP, the command goes out, and then the client starts TLS resuming the control connection's
   session (aioftp's SSLSessionBoundContext), which is also the order of Python's
   ftplib.FTP_TLS.ntransfercmd (the command, its 1xx reply, then wrap_socket). pyftpdlib and
   vtm's own server accept both orders.
2. The last command sent (a password censored) and the last reply received, so that every
   failure names both (ftp_session.py's error mapping).
3. Listings as raw lines: MLSD (RFC 3659) when the server has it, else LIST, whose lines
   ftp_listing.py parses one by one.

The subclass is built on first use: core modules import no aioftp at import time.
"""
from __future__ import annotations

import asyncio
import functools
import ssl

LIST_CHUNK = 1 << 16
MAX_LISTING_BYTES = 64 << 20  # a folder listing past this is not a registry folder


@functools.cache
def client_class():
    """aioftp.Client with TLS after the transfer command and the last command/reply kept (see
    the module docstring). Constructor arguments are aioftp.Client's."""
    import aioftp
    from aioftp.client import DataConnectionThrottleStreamIO
    from aioftp.common import SSLSessionBoundContext, async_enterable

    class RegistryFtpClient(aioftp.Client):
        last_command = ""  # for messages: "STOR registry/m/dev/.incoming-x.tar.gz", "PASS ***"
        last_reply = ""  # "553 Could not create file."
        mlsd: bool | None = None  # None: not tried yet; False: the server refused it (50x)
        _plain_data = False

        async def command(self, command=None, expected_codes=(), wait_codes=(), censor_after=None):
            if command:
                self.last_command = command[:censor_after] + "***" if censor_after else command
                self.last_reply = ""
            return await super().command(command, expected_codes, wait_codes, censor_after)

        async def parse_response(self):
            code, info = await super().parse_response()
            self.last_reply = f"{code} {' '.join(line.strip() for line in info)}".strip()[:300]
            return code, info

        async def _open_connection(self, host: str, port: int):
            if not self._plain_data:
                return await super()._open_connection(host, port)
            return await asyncio.wait_for(asyncio.open_connection(host, port), self.connection_timeout)

        @async_enterable
        async def get_stream(self, command=None, expected_codes=(), wait_codes=(), censor_after=None,
                             conn_type="I", offset=0):
            control = self.stream.writer.transport.get_extra_info("ssl_object")
            self._plain_data = control is not None
            try:
                reader, writer = await self.get_passive_connection(conn_type)
            finally:
                self._plain_data = False
            try:
                if offset:
                    await self.command(f"REST {offset}", "350")
                await self.command(command, expected_codes, wait_codes, censor_after)
                if control is not None:
                    session = SSLSessionBoundContext(ssl.PROTOCOL_TLS_CLIENT, context=control.context,
                                                     session=control.session)
                    await writer.start_tls(session, server_hostname=self.server_host,
                                           ssl_handshake_timeout=self.socket_timeout)
            except BaseException:
                writer.close()
                raise
            return DataConnectionThrottleStreamIO(self, reader, writer, throttles={"_": self.throttle},
                                                  timeout=self.socket_timeout)

    return RegistryFtpClient


async def read_listing(client, path: str) -> tuple[str, list[bytes]] | None:
    """The raw lines of a folder listing: ("MLSD", lines) when the server has MLSD, else
    ("LIST", lines); None when the server says the folder does not exist (450/55x; some
    servers, vsftpd among them, list a missing folder as empty instead). Lines lose their CR LF.
    Raises aioftp.StatusCodeError for other refusals, RuntimeError past MAX_LISTING_BYTES."""
    import aioftp

    for command in ("MLSD", "LIST"):
        if command == "MLSD" and client.mlsd is False:
            continue
        try:
            stream = await client.get_stream(f"{command} {path}".strip(), "1xx")
        except aioftp.StatusCodeError as exc:
            code = str(exc.received_codes[-1])
            if command == "MLSD" and code.startswith("50"):  # not implemented: LIST it is
                client.mlsd = False
                continue
            if code.startswith("55") or code == "450":
                return None
            raise
        client.mlsd = client.mlsd or command == "MLSD"
        return command, await _read_lines(stream, path)
    return None  # not reached: LIST always answers or raises


async def _read_lines(stream, path: str) -> list[bytes]:
    data = bytearray()
    try:
        while block := await stream.read(LIST_CHUNK):
            data += block
            if len(data) > MAX_LISTING_BYTES:
                raise RuntimeError(f"the listing of {path or 'the login folder'} is larger than "
                                   f"{MAX_LISTING_BYTES >> 20} MiB")
    except BaseException:
        stream.close()
        raise
    await stream.finish()
    return [line.rstrip(b"\r") for line in bytes(data).split(b"\n") if line.strip()]
