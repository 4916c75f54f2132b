"""Tornado's HTTP clients as peers of the HTTP-client scenarios.

    client.py -impl curl|simple -url URL [-c N] [-warmup-ms MS] (-duration-ms MS | -n TOTAL) [-body keep|discard]

-impl curl is CurlAsyncHTTPClient (libcurl through pycurl: the design the
curl package follows), -impl simple is SimpleAsyncHTTPClient (pure Python).
Both get max_clients = -c, and -c fetches are kept in flight on one
IOLoop, each completion starting the next. With -body discard the body
goes to a streaming_callback that drops it. One result line, as every
client peer prints (bench/peers/internal/clientrun):

    requests=N errors=E cpu_us=C wall_us=W rss_kb_start=R0 rss_kb_end=R1 fds_start=F0 fds_end=F1
"""

import argparse
import os
import resource
import sys
import time


def cpu_us():
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return int((ru.ru_utime + ru.ru_stime) * 1e6)


def rss_kb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


def open_fds():
    return len(os.listdir("/proc/self/fd")) - 1


def main():
    p = argparse.ArgumentParser()
    p.add_argument("-impl", choices=["curl", "simple"], required=True)
    p.add_argument("-url", required=True)
    p.add_argument("-c", type=int, default=100)
    p.add_argument("-warmup-ms", type=int, default=500)
    p.add_argument("-duration-ms", type=int, default=1000)
    p.add_argument("-n", type=int, default=0)
    p.add_argument("-body", choices=["keep", "discard"], default="keep")
    a = p.parse_args()

    from tornado.httpclient import AsyncHTTPClient, HTTPRequest
    from tornado.ioloop import IOLoop

    if a.impl == "curl":
        import pycurl  # noqa: F401  (fail here, clearly, when python3-pycurl is missing)

        AsyncHTTPClient.configure("tornado.curl_httpclient.CurlAsyncHTTPClient", max_clients=a.c)
    else:
        AsyncHTTPClient.configure("tornado.simple_httpclient.SimpleAsyncHTTPClient", max_clients=a.c)
    loop = IOLoop.current()
    client = AsyncHTTPClient()
    st = {"done": 0, "errors": 0, "limit": 0, "base": None}

    def drop(_chunk):
        pass

    def report():
        b = st["base"]
        print(
            "requests=%d errors=%d cpu_us=%d wall_us=%d rss_kb_start=%d rss_kb_end=%d fds_start=%d fds_end=%d"
            % (st["done"] - b["done"], st["errors"] - b["errors"], cpu_us() - b["cpu"],
               int((time.monotonic() - b["t"]) * 1e6), b["rss"], rss_kb(), b["fds"], open_fds()),
            flush=True,
        )
        os._exit(0)

    def on_done(fut):
        try:
            ok = fut.result().code == 200
        except Exception:
            ok = False
        st["done"] += 1
        if not ok:
            st["errors"] += 1
        if st["limit"] and st["done"] >= st["limit"]:
            report()
        start_one()

    def start_one():
        req = HTTPRequest(a.url, connect_timeout=60, request_timeout=600,
                          streaming_callback=None if a.body == "keep" else drop)
        loop.add_future(client.fetch(req, raise_error=False), on_done)

    def begin():
        st["base"] = {"done": st["done"], "errors": st["errors"], "cpu": cpu_us(), "t": time.monotonic(),
                      "rss": rss_kb(), "fds": open_fds()}
        if a.n > 0:
            st["limit"] = st["done"] + a.n
        else:
            loop.call_later(a.duration_ms / 1000.0, report)

    for _ in range(a.c):
        start_one()
    loop.call_later(a.warmup_ms / 1000.0, begin)
    loop.start()


if __name__ == "__main__":
    sys.exit(main())
