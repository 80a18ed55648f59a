"""An SMTP server for the alert tests (aiosmtpd): listens on 127.0.0.1 on a free port, prints the port on
stdout, and writes each message it accepts to OUT_DIR/NNNN.eml (envelope sender and recipients first, as
X-Envelope-From / X-Envelope-To headers). Runs until its stdin closes.

Usage: python3 smtp_sink.py OUT_DIR
"""

import pathlib
import socket
import sys

from aiosmtpd.controller import Controller


class Saver:
    def __init__(self, out):
        self.out = pathlib.Path(out)
        self.count = 0

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        head = "X-Envelope-From: {}\r\nX-Envelope-To: {}\r\n".format(envelope.mail_from, ",".join(envelope.rcpt_tos))
        tmp = self.out / "{:04}.tmp".format(self.count)
        tmp.write_bytes(head.encode() + envelope.content)
        tmp.rename(self.out / "{:04}.eml".format(self.count))
        return "250 Message accepted for delivery"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    port = free_port()
    controller = Controller(Saver(sys.argv[1]), hostname="127.0.0.1", port=port)
    controller.start()
    print(port, flush=True)
    sys.stdin.read()
    controller.stop()


if __name__ == "__main__":
    main()
