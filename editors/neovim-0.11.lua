-- procref for Neovim 0.11+: vim.lsp.config + vim.lsp.enable.
--
-- UNTESTED HERE: the test machine has Debian's Neovim 0.7.2, which has no
-- vim.lsp.config. The 0.7 form of the same configuration, neovim-0.7.lua,
-- is tested (editors/neovim_test.go).
-- editors/syntax_test.go only checks that this file compiles.
--
-- Use: copy into init.lua. With nvim-lspconfig installed only `cmd` is
-- needed (lspconfig's lsp/*.lua supply filetypes and root markers and
-- vim.lsp.config merges); without it, the filetypes and root_markers below
-- are enough. Needs `procref` on $PATH (or write its absolute path).
--
-- Caveats:
--   * procref shares one backend per workspace root: keep root markers the
--     same in every instance.
--   * gopls runs in tcp mode ({socket}); the others in mux mode.
--   * :LspRestart (lspconfig) or vim.lsp.enable(name, false) + true renews
--     this instance's connection only; the shared server keeps running. To
--     restart the server itself: `procref stop NAME` (see `procref status`).

vim.lsp.config('pylsp', {
  cmd = { 'procref', '--', 'pylsp' },
  filetypes = { 'python' },
  root_markers = { 'pyproject.toml', 'setup.py', 'setup.cfg', '.git' },
})
vim.lsp.config('clangd', {
  cmd = { 'procref', '--', 'clangd' },
  filetypes = { 'c', 'cpp', 'objc', 'objcpp' },
  root_markers = { 'compile_commands.json', 'compile_flags.txt', '.clangd', '.git' },
})
vim.lsp.config('gopls', {
  cmd = { 'procref', '--', 'gopls', 'serve', '-listen=unix;{socket}' },
  filetypes = { 'go', 'gomod', 'gowork' },
  root_markers = { 'go.work', 'go.mod', '.git' },
})
vim.lsp.config('rust_analyzer', {
  cmd = { 'procref', '--', 'rust-analyzer' },
  filetypes = { 'rust' },
  root_markers = { 'Cargo.toml', '.git' },
})

vim.lsp.enable({ 'pylsp', 'clangd', 'gopls', 'rust_analyzer' })
