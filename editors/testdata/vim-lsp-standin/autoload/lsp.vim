" Stand-in for vim-lsp's lsp#register_server, for editors/syntax_test.go:
" records each registered server's name and the command its 'cmd' returns.
let g:calls = get(g:, 'calls', {})

function! lsp#register_server(info) abort
  let g:calls[a:info.name] = a:info.cmd({})
endfunction
