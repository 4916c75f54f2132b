"""Tornado TCPServer echo: the peer of examples/echo.

    python3 echo.py -addr 127.0.0.1:8888
"""

import logging

from tornado.ioloop import IOLoop
from tornado.iostream import StreamClosedError
from tornado.tcpserver import TCPServer

from common import parse_addr


class EchoServer(TCPServer):
    async def handle_stream(self, stream, address):
        try:
            while True:
                data = await stream.read_bytes(65536, partial=True)
                await stream.write(data)
        except StreamClosedError:
            pass


def main():
    host, port = parse_addr()
    EchoServer().listen(port, address=host)
    logging.basicConfig(level=logging.INFO)
    logging.info("tornado echo listening on %s:%d", host, port)
    IOLoop.current().start()


if __name__ == "__main__":
    main()
