-- procref for Neovim 0.8–0.10 without nvim-lspconfig: vim.lsp.start from a
-- FileType autocmd (vim.lsp.start reuses the client for the same name and
-- root_dir, so every buffer of a project shares one connection).
--
-- UNTESTED HERE: the test machine has Debian's Neovim 0.7.2, which has no
-- vim.lsp.start or vim.fs. The 0.7 form of the same configuration,
-- neovim-0.7.lua, is tested on 0.7 (editors/neovim_test.go).
-- editors/syntax_test.go only checks that this file compiles.
--
-- Use: copy into init.lua. Needs `procref` on $PATH (or write its absolute
-- path).
--
-- Caveats:
--   * procref shares one backend per workspace root: keep root markers the
--     same in every instance.
--   * gopls runs in tcp mode ({socket}); the others in mux mode.
--   * Restarting a client (vim.lsp.stop_client, then :edit) renews this
--     instance's connection only; the shared server keeps running. To
--     restart the server itself: `procref stop NAME` (see `procref status`).

local servers = {
  python = { name = 'pylsp', cmd = { 'procref', '--', 'pylsp' }, markers = { 'pyproject.toml', 'setup.py', 'setup.cfg', '.git' } },
  c = { name = 'clangd', cmd = { 'procref', '--', 'clangd' }, markers = { 'compile_commands.json', 'compile_flags.txt', '.clangd', '.git' } },
  cpp = { name = 'clangd', cmd = { 'procref', '--', 'clangd' }, markers = { 'compile_commands.json', 'compile_flags.txt', '.clangd', '.git' } },
  go = { name = 'gopls', cmd = { 'procref', '--', 'gopls', 'serve', '-listen=unix;{socket}' }, markers = { 'go.work', 'go.mod', '.git' } },
  rust = { name = 'rust-analyzer', cmd = { 'procref', '--', 'rust-analyzer' }, markers = { 'Cargo.toml', '.git' } },
}

vim.api.nvim_create_autocmd('FileType', {
  group = vim.api.nvim_create_augroup('procref_lsp', { clear = true }),
  pattern = vim.tbl_keys(servers),
  callback = function(args)
    local s = servers[vim.bo[args.buf].filetype]
    if vim.bo[args.buf].buftype ~= '' or args.file == '' then
      return
    end
    local marker = vim.fs.find(s.markers, { upward = true, path = vim.fs.dirname(args.file) })[1]
    vim.lsp.start({
      name = s.name,
      cmd = s.cmd,
      root_dir = marker and vim.fs.dirname(marker) or vim.fs.dirname(args.file),
    })
  end,
})
