-- procref with nvim-lspconfig (Neovim 0.7–0.10; on 0.11+ prefer
-- neovim-0.11.lua, lspconfig's setup() is deprecated there).
--
-- UNTESTED HERE: the test machine has Debian's Neovim 0.7.2 but no
-- nvim-lspconfig (Debian does not package it), so no test loads this file.
-- The same commands are proven through vim.lsp.start_client by
-- neovim-0.7.lua (editors/neovim_test.go); syntax_test.go only checks that
-- this file compiles.
--
-- Use: in init.lua, instead of (or in addition to) your existing setup()
-- calls. Only `cmd` changes; lspconfig still supplies filetypes and root
-- detection. Needs `procref` on $PATH (or write its absolute path).
--
-- Caveats:
--   * gopls runs in tcp mode ({socket}): gopls serves every window itself and
--     procref only starts, shares and stops it. The others run in mux mode.
--   * :LspRestart restarts this instance's connection only; the shared
--     server keeps running for the other windows. To restart the server
--     itself: `procref stop NAME` (see `procref status`).
--   * procref shares one backend per workspace root: every instance must
--     find the same root (lspconfig's root_dir), which it does with the
--     default root patterns.

local lspconfig = require('lspconfig')

lspconfig.pylsp.setup({ cmd = { 'procref', '--', 'pylsp' } })
lspconfig.clangd.setup({ cmd = { 'procref', '--', 'clangd' } })
lspconfig.gopls.setup({ cmd = { 'procref', '--', 'gopls', 'serve', '-listen=unix;{socket}' } })
lspconfig.rust_analyzer.setup({ cmd = { 'procref', '--', 'rust-analyzer' } })
