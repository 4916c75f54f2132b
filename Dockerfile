# ioloop in a container: builds the library with cgo, runs go vet and the tests, builds every
# benchmark peer, and runs the peer comparison by default.
#
#   docker build -t ioloop .
#   docker run --rm ioloop                        # full comparison, markdown table on stdout
#   docker run --rm ioloop -quick                 # smoke run, under a minute
#   docker run --rm -v "$PWD:/out" ioloop -svg /out/bench.svg -json /out/bench.json
#   docker run --rm --entrypoint go ioloop test ./... ./bench/...
#
# BASE is an argument so that CI can build without a registry: scripts/docker-offline.sh makes a
# local base with the layout of the golang:*-bookworm images (Go in /usr/local/go, GOPATH=/go
# writable by every user, gcc, git, ca-certificates) and passes it with --build-arg BASE=...
ARG BASE=golang:1.26-bookworm

# build: the toolchain, the peers' Debian packages, the modules, then vet, tests and peer binaries.
FROM ${BASE} AS build

# gcc and pkg-config for cgo and the C peers; libcurl4-openssl-dev for the curl package (and the
# C libcurl client peer); libevent-dev, libssl-dev, python3-tornado, python3-pycurl and wrk are
# the libevent peer, the C/OpenSSL peer of the TLS scenarios, the Tornado peers (the seed's
# program, and the CurlAsyncHTTPClient client) and the HTTP load generator (the bench skips a
# peer whose package is missing, so all of them are installed here); openssl for the test that
# checks what an OpenSSL client negotiates with each TLS peer; valgrind for the test that runs
# the C core under it; curl for the test of examples/hello over HTTPS (the same packages as
# .ci/run).
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
      gcc libc6-dev pkg-config libcurl4-openssl-dev libevent-dev libssl-dev openssl \
      python3-tornado python3-pycurl wrk valgrind curl \
 && rm -rf /var/lib/apt/lists/*

# The benchmark needs no privilege (CPU pinning with sched_setaffinity is allowed to any user),
# so everything from here on is built and tested as the user that runs it: a test that only
# passes as root fails here. uid 1000 so that a typical desktop user's directory mounted at
# /out is writable (otherwise make it writable for uid 1000: the bench runs the go command, so
# it needs this user's home for its build cache and cannot run as an arbitrary --user).
RUN useradd --create-home --uid 1000 --user-group ioloop \
 && install -d -o ioloop -g ioloop /src /src/bench /out
USER ioloop
WORKDIR /src

# Modules in their own layer, so that editing source does not download them again. The
# patterns are optional matches: go.sum, go.work and bench/ are copied when they exist.
COPY --chown=ioloop:ioloop go.mod go.sum* go.work* ./
COPY --chown=ioloop:ioloop bench/go.* bench/
RUN go mod download

COPY --chown=ioloop:ioloop . .
# ./... stops at the bench module's boundary even in workspace mode: name it too.
RUN go vet ./... ./bench/...
RUN go test ./... ./bench/...
# -prepare builds every peer into bench/.build/, so running the image needs no network and
# measures no compiler work.
RUN go build -o /home/ioloop/bin/ioloop-bench ./bench \
 && /home/ioloop/bin/ioloop-bench -prepare

# run: the same tree, with the comparison as the command. It keeps the toolchain and the build
# cache on purpose: the peers are run from bench/ (the Tornado peer is a Python script, the C
# peers link libevent), and `go test ./...` must work in the shipped image (CI runs it there).
FROM build AS run
ENTRYPOINT ["/home/ioloop/bin/ioloop-bench"]
