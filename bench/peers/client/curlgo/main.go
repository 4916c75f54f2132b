//go:build linux && cgo

// Command curlgo is the ioloop/curl peer of the HTTP-client scenarios: one
// loop, one curl.Client, -c transfers in flight, each completion starting
// the next (see internal/clientrun for the flags and the result line).
// With -body keep the body arrives in Response.Body, as ordinary code
// would use it; with -body discard it streams through OnBody and is
// dropped.
package main

import (
	"log"

	"github.com/ioloop-go/ioloop"
	"github.com/ioloop-go/ioloop/bench/peers/internal/clientrun"
	"github.com/ioloop-go/ioloop/curl"
)

func main() {
	a := clientrun.Parse()
	loop, err := ioloop.New()
	if err != nil {
		log.Fatal(err)
	}
	client, err := curl.NewClient(loop, curl.WithMaxClients(a.Conc))
	if err != nil {
		log.Fatal(err)
	}
	req := &curl.Request{URL: a.URL}
	if !a.Keep {
		req.OnBody = func([]byte) error { return nil }
	}
	m := clientrun.NewMeter(a)
	var cb func(*curl.Response, error)
	cb = func(resp *curl.Response, err error) {
		m.Done(err != nil || resp.StatusCode != 200)
		client.Fetch(req, cb)
	}
	_ = loop.AddCallback(func() {
		for range a.Conc {
			client.Fetch(req, cb)
		}
	})
	log.Fatal(loop.Start())
}
