"""Tornado's Hello World (tornado.web), the seed's program: the peer of
examples/hello. It answers with the same body and Content-Type as the other
peers so that the suite's response check holds for all of them.

    python3 hello.py -addr 127.0.0.1:8888
"""

import logging

import tornado.web
from tornado.ioloop import IOLoop

from common import parse_addr


class MainHandler(tornado.web.RequestHandler):
    def get(self):
        self.set_header("Content-Type", "text/plain")
        self.write("Hello, world!")


def main():
    host, port = parse_addr()
    app = tornado.web.Application([(r"/", MainHandler)])
    app.listen(port, address=host)
    # Access logs would cost more than the request itself.
    logging.getLogger("tornado.access").setLevel(logging.WARNING)
    logging.basicConfig(level=logging.INFO)
    logging.info("tornado hello listening on %s:%d", host, port)
    IOLoop.current().start()


if __name__ == "__main__":
    main()
