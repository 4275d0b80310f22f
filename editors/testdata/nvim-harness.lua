-- Test harness for editors/neovim_test.go, loaded with --cmd before the
-- snippet under test (-u editors/neovim-0.7.lua). It changes nothing in the
-- snippet's behaviour; it only reports what happens as JSON lines appended to
-- $PROCREF_TEST_EVENTS, so the Go test can wait for events instead of
-- sleeping (every event also has "time", seconds since the epoch):
--
--   {"event":"init","client":ID,"name":NAME,"root":DIR}   a client finished initialize
--   {"event":"diagnostics","client":ID,"file":PATH,"count":N,"text":MESSAGES}
--        diagnostics changed; one event per client, its messages joined by newlines
--   {"event":"hover","client":ID,"text":TEXT,"err":ERR}     answer to a hover request
--   {"event":"exit","client":ID,"code":N,"signal":N}       a client's server process exited
--
-- Neovim 0.7 has no LspAttach event, so the harness wraps
-- vim.lsp.start_client (looked up at call time by the snippet) to learn when
-- a client is initialized. After each init it asks for a hover at
-- $PROCREF_TEST_HOVER ("line,col", 0-based) in every buffer of the client;
-- the Go test can ask again with luaeval("ProcrefTestHover()").

-- The Python ftplugin probes the python3 provider, which runs `python3`; on a
-- machine whose python3 is a pyenv shim and with the tests' isolated HOME
-- that probe never returns, and Neovim hangs before it reads the file. No
-- provider is needed for LSP.
vim.g.loaded_python3_provider = 0
vim.g.loaded_node_provider = 0
vim.g.loaded_perl_provider = 0
vim.g.loaded_ruby_provider = 0

local events = assert(os.getenv('PROCREF_TEST_EVENTS'), 'PROCREF_TEST_EVENTS not set')

local function emit(t)
  local sec, usec = vim.loop.gettimeofday()
  t.time = sec + usec / 1e6
  -- One write of one line with O_APPEND: the reader never sees a torn line
  -- from two writers, and ignores a last line without its newline.
  local f = assert(io.open(events, 'a'))
  f:write(vim.json.encode(t) .. '\n')
  f:close()
end

local function hover_text(result)
  if not result or not result.contents then
    return ''
  end
  local lines = vim.lsp.util.convert_input_to_markdown_lines(result.contents)
  return table.concat(lines, '\n')
end

local function hover(client, bufnr)
  local line, col = (os.getenv('PROCREF_TEST_HOVER') or '0,0'):match('(%d+),(%d+)')
  local params = {
    textDocument = { uri = vim.uri_from_bufnr(bufnr) },
    position = { line = tonumber(line), character = tonumber(col) },
  }
  client.request('textDocument/hover', params, function(err, result)
    emit({ event = 'hover', client = client.id, text = hover_text(result), err = err and err.message or vim.NIL })
  end, bufnr)
end

-- ProcrefTestHover asks every live client for a hover in each of its
-- buffers; answers arrive as hover events. Returns the number of requests.
function ProcrefTestHover()
  local n = 0
  for _, client in pairs(vim.lsp.get_active_clients()) do
    if not client.is_stopped() then
      for _, bufnr in ipairs(vim.lsp.get_buffers_by_client_id(client.id)) do
        hover(client, bufnr)
        n = n + 1
      end
    end
  end
  return n
end

local start_client = vim.lsp.start_client
vim.lsp.start_client = function(config)
  local on_init, on_exit = config.on_init, config.on_exit
  config.on_init = function(client, result)
    emit({ event = 'init', client = client.id, name = client.name, root = config.root_dir })
    -- Scheduled: runs after start_client has sent didOpen for the buffers
    -- already attached.
    vim.schedule(function()
      for _, bufnr in ipairs(vim.lsp.get_buffers_by_client_id(client.id)) do
        hover(client, bufnr)
      end
    end)
    if on_init then
      return on_init(client, result)
    end
  end
  config.on_exit = function(code, signal, client_id)
    emit({ event = 'exit', client = client_id, code = code, signal = signal })
    if on_exit then
      return on_exit(code, signal, client_id)
    end
  end
  return start_client(config)
end

-- One diagnostics event per client attached to the buffer, with only that
-- client's diagnostics: a restarted client's fresh diagnostics must not be
-- confused with its predecessor's.
vim.api.nvim_create_autocmd('DiagnosticChanged', {
  callback = function(args)
    for _, client in pairs(vim.lsp.buf_get_clients(args.buf)) do
      local messages = {}
      local ns = vim.lsp.diagnostic.get_namespace(client.id)
      for _, d in ipairs(vim.diagnostic.get(args.buf, { namespace = ns })) do
        table.insert(messages, d.message)
      end
      emit({
        event = 'diagnostics',
        client = client.id,
        file = vim.api.nvim_buf_get_name(args.buf),
        count = #messages,
        text = table.concat(messages, '\n'),
      })
    end
  end,
})
