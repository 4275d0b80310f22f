module github.com/procref/procref

go 1.26.0

require (
	github.com/adrg/xdg v0.5.3
	go.uber.org/goleak v1.3.0
	golang.org/x/sys v0.50.0
)

require github.com/stretchr/testify v1.12.1 // indirect
