-- Test driver, sourced after editors/nvim/codeparrot.lua by tests/editors/test_neovim.py with the
-- JavaScript file already loaded. Asks the codeparrot server for completions twice — directly
-- (textDocument/completion) and through vim.lsp.completion in Insert mode, as a user would, accepting
-- the popup's item — reads the server's accept counts, and writes what came back as JSON to
-- $CODEPARROT_TEST_OUT, then quits.

local out_path = assert(vim.env.CODEPARROT_TEST_OUT, 'CODEPARROT_TEST_OUT not set')
local timeout_ms = tonumber(vim.env.CODEPARROT_TEST_TIMEOUT_MS or '120000')
local result = { filetype = vim.bo.filetype, errors = {} }

local function finish()
  local f = assert(io.open(out_path, 'w'))
  f:write(vim.json.encode(result))
  f:close()
  vim.cmd('qall!')
end

local function fail(msg)
  table.insert(result.errors, msg)
  finish()
end

local ok_attach = vim.wait(timeout_ms, function()
  return #vim.lsp.get_clients({ bufnr = 0, name = 'codeparrot' }) > 0
end, 50)
if not ok_attach then
  return fail('codeparrot client never attached to the buffer')
end
local client = vim.lsp.get_clients({ bufnr = 0, name = 'codeparrot' })[1]
result.client_name = client.name
result.completion_enabled = client.server_capabilities.completionProvider ~= nil

-- Cursor at the end of the last line (the test file ends in the middle of a word). Normal mode
-- cannot sit past the last character, so the request position is built from the line itself,
-- as it would be in Insert mode.
local last = vim.api.nvim_buf_line_count(0)
local line = vim.api.nvim_buf_get_lines(0, last - 1, last, true)[1]
vim.api.nvim_win_set_cursor(0, { last, #line })

-- 1) A direct request, as any plugin would send it. The first one starts the model load and the
-- server answers empty while loading, so ask again until items come or the deadline passes.
local params = {
  textDocument = { uri = vim.uri_from_bufnr(0) },
  position = { line = last - 1, character = vim.str_utfindex(line, client.offset_encoding) },
}
local deadline = (vim.uv.hrtime() / 1e6) + timeout_ms
local items = {}
result.attempts = 0
repeat
  result.attempts = result.attempts + 1
  local responses, err = vim.lsp.buf_request_sync(0, 'textDocument/completion', params, timeout_ms)
  if not responses then
    return fail('textDocument/completion: ' .. tostring(err))
  end
  local answer = responses[client.id] or {}
  if answer.err then
    return fail('textDocument/completion error: ' .. vim.inspect(answer.err))
  end
  items = answer.result and (answer.result.items or answer.result) or {}
  if #items == 0 then
    vim.wait(250)
  end
until #items > 0 or (vim.uv.hrtime() / 1e6) > deadline
result.request_items = {}
for _, item in ipairs(items) do
  table.insert(result.request_items, {
    label = item.label,
    newText = item.textEdit and item.textEdit.newText or vim.NIL,
    range = item.textEdit and item.textEdit.range or vim.NIL,
  })
end
result.cursor = { line = params.position.line, character = params.position.character }

-- 2) vim.lsp.completion, the way the config's <C-Space> mapping asks: in Insert mode at the end
-- of the line; the popup items are read back with complete_info().
result.popup_words = {}
vim.defer_fn(function()
  vim.lsp.completion.get()
  vim.wait(timeout_ms, function()
    return #vim.fn.complete_info({ 'items' }).items > 0
  end, 50)
  for _, it in ipairs(vim.fn.complete_info({ 'items' }).items) do
    table.insert(result.popup_words, it.word)
  end
  -- <C-y> accepts the selected (first) item: vim.lsp.completion then runs the item's command,
  -- through workspace/executeCommand (the server counts the accept).
  vim.api.nvim_feedkeys(vim.keycode('<C-y><Esc>'), 'n', false)
end, 10)
-- 'x!' runs the typed keys and stays in Insert mode until the timer above presses <Esc>.
vim.api.nvim_feedkeys('A', 'x!', false)

-- 3) What the server counted: accepts per source (codeparrot/stats).
result.accepted = {}
vim.wait(20000, function()
  local answer = client:request_sync('codeparrot/stats', vim.empty_dict(), 5000, 0)
  local acceptance = answer and answer.result and answer.result.acceptance or {}
  result.accepted = {}
  local any = false
  for source, counts in pairs(acceptance.by_source or {}) do
    result.accepted[source] = counts.accepted
    any = any or counts.accepted > 0
  end
  return any
end, 200)
result.line_after = vim.api.nvim_buf_get_lines(0, last - 1, last, true)[1]
finish()
