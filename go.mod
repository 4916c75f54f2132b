module github.com/ioloop-go/ioloop

go 1.26

require (
	github.com/golang/mock v1.6.0
	golang.org/x/sys v0.43.0
)
