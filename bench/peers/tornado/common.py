"""What the two Tornado peers share: the suite's command line and the
address split. Tornado runs one IOLoop in one process, like every
single-loop peer."""

import argparse


def parse_addr():
    p = argparse.ArgumentParser()
    p.add_argument("-addr", default="127.0.0.1:8888", help="listen address host:port")
    args = p.parse_args()
    host, _, port = args.addr.rpartition(":")
    return host, int(port)
