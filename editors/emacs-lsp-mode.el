;;; emacs-lsp-mode.el --- procref with Emacs lsp-mode  -*- lexical-binding: t -*-

;; UNTESTED HERE: CI does not install lsp-mode, so no test runs a session
;; with this file.  It was checked once by hand with Debian 12's
;; elpa-lsp-mode 8.0 that these variables are the ones lsp-mode builds the
;; four server commands from.  (Installing elpa-lsp-mode in CI would let
;; editors/emacs_test.go cover it like emacs-eglot.el.)  The same commands
;; are proven with eglot (editors/emacs-eglot.el); editors/syntax_test.go
;; checks that this file loads and sets the four commands.
;;
;; Use: in your init file.  lsp-mode keeps each server's command in a
;; variable; these point them at procref (lsp-mode 8.0 names).  Needs
;; `procref' on `exec-path' (or write its absolute file name).
;;
;; Caveats:
;; - gopls runs in tcp mode ({socket}); the others in mux mode.
;; - `lsp-workspace-restart' / `lsp-workspace-shutdown' renew or end this
;;   Emacs's connection only; the shared server keeps running for the other
;;   editors.  To restart the server itself: `procref stop NAME' (see
;;   `procref status').
;; - procref shares one backend per root: lsp-mode asks for the project root
;;   of the first file; every Emacs must choose the same one.

(setq lsp-pylsp-server-command '("procref" "--" "pylsp"))
(setq lsp-clients-clangd-executable "procref"
      lsp-clients-clangd-args '("--" "clangd"))
(setq lsp-go-gopls-server-path "procref"
      lsp-go-gopls-server-args '("--" "gopls" "serve" "-listen=unix;{socket}"))
(setq lsp-rust-analyzer-server-command '("procref" "--" "rust-analyzer"))

;;; emacs-lsp-mode.el ends here
