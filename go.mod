module github.com/procref/procref

go 1.26

require (
	github.com/adrg/xdg v0.5.3 // indirect
	github.com/go-json-experiment/json v0.0.0-20260601182631-00ed12fed2a6 // indirect
	github.com/gofrs/flock v0.13.2 // indirect
	github.com/rogpeppe/go-internal v1.16.0 // indirect
	go.lsp.dev/jsonrpc2 v1.0.1 // indirect
	go.uber.org/goleak v1.3.0 // indirect
	golang.org/x/sys v0.50.0 // indirect
)
