;;; emacs-eglot.el --- procref with Emacs eglot  -*- lexical-binding: t -*-

;; TESTED: editors/emacs_test.go loads this very file into two headless
;; Emacs daemons (Debian's emacs-nox 28.2 + elpa-eglot 1.9) that open a
;; Python file through `procref -- pylsp' and share one pylsp.
;;
;; Use: put this into your init file (eglot is built into Emacs 29+; on
;; Emacs 28 install it with `M-x package-install RET eglot' or Debian's
;; elpa-eglot). Every Emacs (and every other editor) that opens files under
;; the same project root then shares one server. Needs `procref' on
;; `exec-path' (or write its absolute file name).
;;
;; Caveats:
;; - `add-to-list' puts these entries first, so they win over eglot's
;;   defaults for the same modes.
;; - gopls runs in tcp mode ({socket}): gopls serves every client itself and
;;   procref only starts, shares and stops it.  The others run in mux mode
;;   through procref's LSP multiplexer.
;; - The root procref shares by is the one eglot sends (the project root:
;;   the VC root, else the file's directory); editors agree on it when the
;;   project is under version control.
;; - `M-x eglot-shutdown' or `eglot-reconnect' ends or renews this Emacs's
;;   connection only; the shared server keeps running for the other
;;   editors.  To restart the server itself: `procref stop NAME' (see
;;   `procref status').

(with-eval-after-load 'eglot
  (dolist (entry
           '(((python-mode python-ts-mode) . ("procref" "--" "pylsp"))
             ((c-mode c-ts-mode c++-mode c++-ts-mode) . ("procref" "--" "clangd"))
             ((go-mode go-ts-mode) . ("procref" "--" "gopls" "serve" "-listen=unix;{socket}"))
             ((rust-mode rust-ts-mode) . ("procref" "--" "rust-analyzer"))))
    (add-to-list 'eglot-server-programs entry)))

(dolist (hook '(python-mode-hook python-ts-mode-hook
                c-mode-hook c-ts-mode-hook c++-mode-hook c++-ts-mode-hook
                go-mode-hook go-ts-mode-hook
                rust-mode-hook rust-ts-mode-hook))
  (add-hook hook #'eglot-ensure))

;;; emacs-eglot.el ends here
