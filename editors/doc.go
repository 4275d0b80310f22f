// Package editors holds procref's ready-made editor configurations (the
// *.lua, *.el, *.toml, ... files beside this one, indexed in README.md) and
// the tests that prove them with real headless editors.
//
// The package has no Go API. Its tests (Linux) build the procref binary,
// put it first on $PATH, and run the snippet files themselves, not copies:
//
//   - neovim_test.go: two `nvim --headless -u editors/neovim-0.7.lua`
//     instances share one pylsp, clangd (mux mode) or gopls (tcp mode)
//     through procref; both get diagnostics and hovers; exactly one server
//     process runs; :LspRestart in one instance leaves the other undisturbed;
//     quitting both leaves no server and no host.
//   - emacs_test.go: two Emacs daemons with editors/emacs-eglot.el do the
//     same through eglot, and an Emacs shares one pylsp with a Neovim.
//   - vscode_test.go: the VS Code wrapper scripts pass --version through to
//     the real server and serve LSP through procref.
//   - syntax_test.go: the snippets for editors not installed here are read
//     by something that knows their language (LuaJIT, Vim script, Emacs
//     Lisp, TOML, JSON) and must configure the expected commands.
//
// A missing editor or language server skips its test with the reason, or
// fails it when PROCREF_REQUIRE_SERVERS=1 (as in CI).
package editors
