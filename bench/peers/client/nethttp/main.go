// Command nethttp is the Go net/http client peer of the HTTP-client
// scenarios: -c goroutines, each fetching in a loop with one shared
// http.Client whose idle pool holds -c connections to the host (see
// internal/clientrun for the flags and the result line). With -body keep
// the body is read with io.ReadAll, as ordinary code would; with -body
// discard it is read 256 KiB at a time and dropped (the chunk the curl
// peers read with; io.Copy to io.Discard would read 8 KiB at a time).
package main

import (
	"io"
	"net/http"

	"github.com/ioloop-go/ioloop/bench/peers/internal/clientrun"
)

func main() {
	a := clientrun.Parse()
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = a.Conc
	tr.MaxIdleConnsPerHost = a.Conc
	client := &http.Client{Transport: tr}
	m := clientrun.NewMeter(a)
	for range a.Conc {
		go func() {
			buf := make([]byte, 256<<10)
			for {
				resp, err := client.Get(a.URL)
				if err != nil {
					m.Done(true)
					continue
				}
				if a.Keep {
					_, err = io.ReadAll(resp.Body)
				} else {
					for err == nil {
						_, err = resp.Body.Read(buf)
					}
					if err == io.EOF {
						err = nil
					}
				}
				resp.Body.Close()
				m.Done(err != nil || resp.StatusCode != 200)
			}
		}()
	}
	select {}
}
