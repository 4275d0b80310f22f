# procref for Kakoune with kakoune-lsp (kak-lsp).
#
# UNTESTED HERE: Debian packages Kakoune but not kak-lsp, so no test loads
# this file. The same commands are proven with Neovim and Emacs
# (editors/neovim_test.go, editors/emacs_test.go).
#
# kakoune-lsp 17+ reads servers from the lsp_servers option, as below (put
# it in kakrc before `lsp-enable`). kak-lsp 16 and older read
# ~/.config/kak-lsp/kak-lsp.toml instead; there, change the `command` and
# `args` of each [language.NAME] section the same way:
#
#   [language.python]
#   filetypes = ["python"]
#   roots = ["pyproject.toml", "setup.py", ".git"]
#   command = "procref"
#   args = ["--", "pylsp"]
#
# Caveats:
# - kak-lsp already shares one server among the clients of one Kakoune
#   session; procref shares it across sessions and with other editors.
# - gopls runs in tcp mode ({socket}); the others in mux mode.
# - Needs `procref` on kak-lsp's $PATH, or an absolute path in `command`.
# - kakoune-lsp's own defaults set lsp_servers from hooks too (groups
#   lsp-filetype-python, lsp-filetype-c-family, ...): load this after them,
#   or drop them first, e.g. `remove-hooks global lsp-filetype-python`.

hook -group procref-lsp global BufSetOption filetype=python %{
    set-option buffer lsp_servers %{
        [pylsp]
        root_globs = ["pyproject.toml", "setup.py", "setup.cfg", ".git"]
        command = "procref"
        args = ["--", "pylsp"]
    }
}
hook -group procref-lsp global BufSetOption filetype=(c|cpp|objc) %{
    set-option buffer lsp_servers %{
        [clangd]
        root_globs = ["compile_commands.json", "compile_flags.txt", ".clangd", ".git"]
        command = "procref"
        args = ["--", "clangd"]
    }
}
hook -group procref-lsp global BufSetOption filetype=go %{
    set-option buffer lsp_servers %{
        [gopls]
        root_globs = ["go.work", "go.mod", ".git"]
        command = "procref"
        args = ["--", "gopls", "serve", "-listen=unix;{socket}"]
    }
}
hook -group procref-lsp global BufSetOption filetype=rust %{
    set-option buffer lsp_servers %{
        [rust-analyzer]
        root_globs = ["Cargo.toml", ".git"]
        command = "procref"
        args = ["--", "rust-analyzer"]
    }
}
