-- codeparrot-lsp for Neovim 0.11+ (built-in LSP client, no plugins).
-- Save as ~/.config/nvim/plugin/codeparrot.lua (or paste into init.lua).
--
-- Environment (both optional):
--   CODEPARROT_LSP_CMD  command that starts the server over stdio (default: codeparrot-lsp,
--                       the console script `pip install codeparrot-lsp` puts on PATH)
--   CODEPARROT_MODEL    model directory or hub id (default: the model shipped with the server)

local cmd = vim.split(vim.env.CODEPARROT_LSP_CMD or 'codeparrot-lsp', ' ', { trimempty = true })
local model = vim.env.CODEPARROT_MODEL
if model and model ~= '' then
  vim.list_extend(cmd, { '--model', model })
end

vim.lsp.config('codeparrot', {
  cmd = cmd,
  filetypes = { 'javascript', 'javascriptreact' },
  root_markers = { 'package.json', '.git' },
  -- The server's `codeparrot` settings section, same keys as the VS Code extension.
  settings = {
    codeparrot = { maxNewTokens = 48, multiline = 'auto', enable = true },
  },
})
vim.lsp.enable('codeparrot')

-- Completion menu from the server: opens on its trigger characters, <C-Space> asks any time.
vim.api.nvim_create_autocmd('LspAttach', {
  group = vim.api.nvim_create_augroup('codeparrot', { clear = true }),
  callback = function(args)
    local client = vim.lsp.get_client_by_id(args.data.client_id)
    if not client or client.name ~= 'codeparrot' then
      return
    end
    vim.opt_local.completeopt = { 'menuone', 'noinsert', 'popup' }
    vim.lsp.completion.enable(true, client.id, args.buf, { autotrigger = true })
    vim.keymap.set('i', '<C-Space>', vim.lsp.completion.get, { buffer = args.buf, desc = 'codeparrot completion' })
  end,
})
