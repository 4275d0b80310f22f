-- procref for Neovim 0.7 without nvim-lspconfig: vim.lsp.start_client + a
-- FileType autocmd. (It uses only APIs that 0.8–0.10 keep, but is tested on
-- 0.7 only; on 0.8+ neovim-0.8.lua is shorter.)
--
-- TESTED: editors/neovim_test.go starts two `nvim --headless -u
-- editors/neovim-0.7.lua` (this very file) on Debian's Neovim 0.7.2 against
-- pylsp and clangd (mux mode) and gopls (tcp mode), and uses :LspRestart.
--
-- Use: copy into your init.lua (or `:luafile` it, or `nvim -u` it). Every
-- Neovim instance then runs `procref -- SERVER` as its language server, and
-- all instances that open files under the same workspace root share one
-- server process. Needs `procref` on $PATH (or write its absolute path).
--
-- Caveats:
--   * The root is the nearest directory (upwards from the file) holding one
--     of root_markers, else the file's own directory. procref shares one
--     backend per root, so two instances must agree on it: keep the markers
--     the same in every instance.
--   * gopls runs in tcp mode ({socket}): gopls serves every window itself and
--     procref only starts, shares and stops it. Everything else runs in mux
--     mode through procref's LSP multiplexer.
--   * :LspRestart (defined here unless another plugin defines it) restarts
--     only this instance's connection; the shared server keeps running for
--     the other instances. To restart the server itself: `procref stop NAME`
--     (see `procref status`).

local servers = {
  {
    name = 'pylsp',
    filetypes = { 'python' },
    cmd = { 'procref', '--', 'pylsp' },
    root_markers = { 'pyproject.toml', 'setup.py', 'setup.cfg', 'requirements.txt', '.git' },
  },
  {
    name = 'clangd',
    filetypes = { 'c', 'cpp', 'objc', 'objcpp' },
    cmd = { 'procref', '--', 'clangd' },
    root_markers = { 'compile_commands.json', 'compile_flags.txt', '.clangd', '.git' },
  },
  {
    name = 'gopls',
    filetypes = { 'go', 'gomod', 'gowork' },
    cmd = { 'procref', '--', 'gopls', 'serve', '-listen=unix;{socket}' },
    root_markers = { 'go.work', 'go.mod', '.git' },
  },
  -- {
  --   name = 'rust-analyzer',
  --   filetypes = { 'rust' },
  --   cmd = { 'procref', '--', 'rust-analyzer' },
  --   root_markers = { 'Cargo.toml', '.git' },
  -- },
}

-- Your keymaps etc. for a buffer with a language server.
local function on_attach(client, bufnr)
  local opts = { buffer = bufnr }
  vim.keymap.set('n', 'K', vim.lsp.buf.hover, opts)
  vim.keymap.set('n', 'gd', vim.lsp.buf.definition, opts)
  vim.keymap.set('n', 'gr', vim.lsp.buf.references, opts)
  vim.keymap.set('n', '[d', vim.diagnostic.goto_prev, opts)
  vim.keymap.set('n', ']d', vim.diagnostic.goto_next, opts)
end

-- Nearest directory upwards from path holding one of markers.
local function find_root(path, markers)
  local dir = vim.fn.fnamemodify(path, ':p:h')
  while true do
    for _, m in ipairs(markers) do
      if vim.loop.fs_stat(dir .. '/' .. m) then
        return dir
      end
    end
    local parent = vim.fn.fnamemodify(dir, ':h')
    if parent == dir then
      return nil
    end
    dir = parent
  end
end

local clients = {} -- "name\0root" -> client id
local restarting = {} -- client id -> { server, buffers } to re-attach when it has exited

local function attach(server, bufnr)
  local path = vim.api.nvim_buf_get_name(bufnr)
  if path == '' or vim.bo[bufnr].buftype ~= '' then
    return
  end
  local root = find_root(path, server.root_markers) or vim.fn.fnamemodify(path, ':p:h')
  local key = server.name .. '\0' .. root
  local id = clients[key]
  -- nil once the client has exited (e.g. the server died): start anew.
  -- A client being stopped by :LspRestart is no longer in `clients`.
  if not (id and vim.lsp.get_client_by_id(id)) then
    id = vim.lsp.start_client({
      name = server.name,
      cmd = server.cmd,
      root_dir = root,
      on_attach = on_attach,
      on_exit = function(_, _, client_id)
        local r = restarting[client_id]
        restarting[client_id] = nil
        if r then
          vim.schedule(function()
            for _, b in ipairs(r.buffers) do
              if vim.api.nvim_buf_is_valid(b) then
                attach(r.server, b)
              end
            end
          end)
        end
      end,
    })
    if not id then
      return
    end
    clients[key] = id
  end
  vim.lsp.buf_attach_client(bufnr, id)
end

local group = vim.api.nvim_create_augroup('procref_lsp', { clear = true })
for _, server in ipairs(servers) do
  vim.api.nvim_create_autocmd('FileType', {
    group = group,
    pattern = server.filetypes,
    callback = function(args)
      attach(server, args.buf)
    end,
  })
end

-- :LspRestart[!] stops this instance's clients (! = at once) and starts them
-- again for the same buffers as soon as the old ones have exited.
if vim.fn.exists(':LspRestart') ~= 2 then
  vim.api.nvim_create_user_command('LspRestart', function(opts)
    for key, id in pairs(clients) do
      local client = vim.lsp.get_client_by_id(id)
      clients[key] = nil
      if client then
        for _, server in ipairs(servers) do
          if server.name == client.name then
            restarting[id] = { server = server, buffers = vim.lsp.get_buffers_by_client_id(id) }
          end
        end
        vim.lsp.stop_client(id, opts.bang)
      end
    end
  end, { bang = true, desc = 'restart this instance\'s language-server connections (procref keeps the shared server)' })
end
