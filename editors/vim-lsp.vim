" procref for Vim with vim-lsp (https://github.com/prabirshrestha/vim-lsp).
"
" UNTESTED HERE: vim-lsp is not installed on the test machine (Debian does
" not package it), so no test loads this file. The same commands are proven
" with Neovim and Emacs (editors/neovim_test.go, editors/emacs_test.go);
" editors/syntax_test.go only sources this file in Neovim against a
" stand-in lsp#register_server and checks the commands it registers.
"
" Use: in your vimrc, after vim-lsp is on the runtimepath. Needs `procref`
" on $PATH (or write its absolute path).
"
" Caveats:
" - With vim-lsp-settings, do not also install its pylsp/clangd/gopls
"   servers for these file types, or both register; or override their
"   command instead: let g:lsp_settings = {'clangd': {'cmd': ['procref', '--', 'clangd']}}
" - gopls runs in tcp mode ({socket}); the others in mux mode.
" - :LspStopServer ends this Vim's connection only; the shared server keeps
"   running for the other windows. To restart the server itself:
"   `procref stop NAME` (see `procref status`).
"
" coc.nvim users: in coc-settings.json,
"   "languageserver": { "clangd": { "command": "procref", "args": ["--", "clangd"],
"                                   "filetypes": ["c", "cpp"] } }

if executable('procref')
  augroup procref_lsp
    autocmd!
    autocmd User lsp_setup call lsp#register_server({
          \ 'name': 'pylsp',
          \ 'cmd': {server_info -> ['procref', '--', 'pylsp']},
          \ 'allowlist': ['python'],
          \ })
    autocmd User lsp_setup call lsp#register_server({
          \ 'name': 'clangd',
          \ 'cmd': {server_info -> ['procref', '--', 'clangd']},
          \ 'allowlist': ['c', 'cpp', 'objc', 'objcpp'],
          \ })
    autocmd User lsp_setup call lsp#register_server({
          \ 'name': 'gopls',
          \ 'cmd': {server_info -> ['procref', '--', 'gopls', 'serve', '-listen=unix;{socket}']},
          \ 'allowlist': ['go', 'gomod'],
          \ })
    autocmd User lsp_setup call lsp#register_server({
          \ 'name': 'rust-analyzer',
          \ 'cmd': {server_info -> ['procref', '--', 'rust-analyzer']},
          \ 'allowlist': ['rust'],
          \ })
  augroup END
endif
