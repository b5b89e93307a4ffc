"""A real SMTP server for the integration tests: Debian's aiosmtpd with AUTH and TLS, writing what it receives.

Started by tests/e2e/support/smtp.rs as `/usr/bin/python3 tests/e2e/support/smtp_server.py --dir DIR --mode MODE ...`.

- mode `none`: plain SMTP; AUTH is offered without TLS (test only).
- mode `starttls`: STARTTLS offered and required before MAIL and AUTH.
- mode `tls`: implicit TLS from the first byte (SMTPS).

Every accepted message becomes NNNN.eml (the raw bytes) plus NNNN.json (envelope sender, recipients, the
authenticated user), each written to a temp name and renamed, so the test never reads half a file. A recipient
whose local part starts with `reject` is refused with 550. With `--echo-credentials`, every AUTH is refused with a 535
reply that quotes what the client sent (the login, the password, and the password and PLAIN response in base64), as
a careless server might: the client must keep all of it out of its errors. The chosen port is printed as `READY <port>` once the
server listens; the test reads that line, so no port is guessed.
"""

import argparse
import base64
import asyncio
import json
import os
import ssl
import sys

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


class Recorder:
    def __init__(self, directory):
        self.directory = directory
        self.count = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.split("@")[0].startswith("reject"):
            return "550 5.1.1 <%s>: mailbox unavailable" % address
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        base = os.path.join(self.directory, "%04d-%d" % (self.count, os.getpid()))
        meta = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "auth_user": session.auth_data if session.authenticated else None,
        }
        for suffix, data in ((".eml", envelope.original_content), (".json", json.dumps(meta).encode())):
            tmp = base + suffix + ".tmp"
            with open(tmp, "wb") as f:
                f.write(data)
            os.rename(tmp, base + suffix)
        return "250 2.0.0 Message accepted"


def echoing_authenticator(server, session, envelope, mechanism, auth_data):
    login = auth_data.login.decode()
    password = auth_data.password.decode()
    plain = base64.b64encode(b"\0" + auth_data.login + b"\0" + auth_data.password).decode()
    b64 = base64.b64encode(auth_data.password).decode()
    return AuthResult(
        success=False,
        handled=False,
        message="535 5.7.8 %s rejected for %s with password %s (%s, %s)" % (mechanism, login, password, b64, plain),
    )


def make_authenticator(user, password):
    def authenticate(server, session, envelope, mechanism, auth_data):
        if (
            isinstance(auth_data, LoginPassword)
            and auth_data.login.decode() == user
            and auth_data.password.decode() == password
        ):
            return AuthResult(success=True, auth_data=user)
        return AuthResult(success=False, handled=False)

    return authenticate


async def main():
    p = argparse.ArgumentParser()
    p.add_argument("--dir", required=True)
    p.add_argument("--mode", choices=["none", "starttls", "tls"], default="none")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--user")
    p.add_argument("--password")
    p.add_argument("--echo-credentials", action="store_true")
    a = p.parse_args()

    context = None
    if a.mode != "none":
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(a.cert, a.key)

    recorder = Recorder(a.dir)
    kwargs = {}
    if a.user:
        kwargs = dict(
            authenticator=(
                echoing_authenticator if a.echo_credentials else make_authenticator(a.user, a.password)
            ),
            auth_required=True,
            # Implicit TLS is encrypted from the start, but aiosmtpd only counts STARTTLS as TLS.
            auth_require_tls=(a.mode == "starttls"),
        )

    def factory():
        return SMTP(
            recorder,
            hostname="smtp.test",
            tls_context=context if a.mode == "starttls" else None,
            require_starttls=(a.mode == "starttls"),
            **kwargs,
        )

    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        factory, host="127.0.0.1", port=a.port, ssl=context if a.mode == "tls" else None
    )
    port = server.sockets[0].getsockname()[1]
    print("READY %d" % port, flush=True)
    await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
