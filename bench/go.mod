module github.com/procref/procref/bench

go 1.26.0

require (
	github.com/procref/procref v0.0.0
	golang.org/x/sys v0.50.0
)

require (
	github.com/adrg/xdg v0.5.3 // indirect
	github.com/gofrs/flock v0.13.2 // indirect
)

replace github.com/procref/procref => ../
