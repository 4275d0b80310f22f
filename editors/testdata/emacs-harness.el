;;; emacs-harness.el --- harness for editors/emacs_test.go  -*- lexical-binding: t -*-

;; Loaded with -l before the snippet under test (-l editors/emacs-eglot.el)
;; into an Emacs daemon.  It changes nothing in the snippet's behaviour; it
;; visits $PROCREF_TEST_FILE once the command loop runs and reports what
;; happens as JSON lines appended to $PROCREF_TEST_EVENTS, so the Go test
;; waits for events instead of sleeping (every event also has "time",
;; seconds since the epoch):
;;
;;   {"event":"init","client":PID,"name":SERVER}        eglot manages the buffer (PID: the proxy's)
;;   {"event":"diagnostics","file":PATH,"count":N,"text":MESSAGES}
;;   {"event":"hover","client":PID,"text":TEXT,"err":ERR}
;;   {"event":"error","text":TEXT}                       the harness itself failed
;;
;; After each init it asks for a hover at $PROCREF_TEST_HOVER ("line,col",
;; 0-based); the Go test can ask again with (procref-test-hover-all).

;; Emacs 28 with native compilation would compile every Lisp file it loads
;; (eglot, jsonrpc, flymake, python, ...) in background processes, into the
;; tests' empty HOME each time: seconds of CPU that have nothing to do with
;; procref.  Load the byte code as it is.
(setq native-comp-deferred-compilation nil)

(require 'json)
(require 'cl-lib)

(defvar procref-test-events
  (or (getenv "PROCREF_TEST_EVENTS") (error "PROCREF_TEST_EVENTS not set")))

(defun procref-test-emit (&rest plist)
  "Append PLIST as one JSON line to the event file."
  (let ((coding-system-for-write 'utf-8-unix)
        (json-encoding-pretty-print nil))
    (write-region (concat (json-encode (append plist (list :time (float-time)))) "\n")
                  nil procref-test-events 'append 'silent)))

(defun procref-test--client (server)
  "The pid of SERVER's process: the procref proxy."
  (process-id (jsonrpc--process server)))

(defun procref-test--hover-text (result)
  (let ((contents (plist-get result :contents)))
    (cond ((null contents) "")
          ((stringp contents) contents)
          (t (json-encode contents)))))

(defun procref-test-hover (buf)
  "Ask BUF's server for a hover at $PROCREF_TEST_HOVER."
  (with-current-buffer buf
    (let* ((pos (mapcar #'string-to-number
                        (split-string (or (getenv "PROCREF_TEST_HOVER") "0,0") ",")))
           (server (eglot-current-server))
           (client (procref-test--client server)))
      (save-excursion
        (goto-char (point-min))
        (forward-line (nth 0 pos))
        (forward-char (nth 1 pos))
        (jsonrpc-async-request
         server :textDocument/hover (eglot--TextDocumentPositionParams)
         :success-fn (lambda (result)
                       (procref-test-emit :event "hover" :client client
                                          :text (procref-test--hover-text result)))
         :error-fn (lambda (err)
                     (procref-test-emit :event "hover" :client client
                                        :err (format "%S" err))))))))

(defun procref-test-hover-all ()
  "Ask for a hover in every managed buffer; return how many were asked."
  (let ((n 0))
    (dolist (buf (buffer-list))
      (when (buffer-local-value 'eglot--managed-mode buf)
        (procref-test-hover buf)
        (setq n (1+ n))))
    n))

(defun procref-test--managed ()
  (when (and eglot--managed-mode (eglot-current-server))
    (let* ((server (eglot-current-server))
           (proc (jsonrpc--process server)))
      (procref-test-emit :event "init" :client (process-id proc)
                         :name (file-name-nondirectory (car (last (process-command proc))))))
    ;; After this hook eglot sends didOpen; hover once that is out.
    (run-with-timer 0 nil #'procref-test-hover (current-buffer))))

(with-eval-after-load 'eglot
  (cl-defmethod eglot-handle-notification :after
    (_server (_method (eql textDocument/publishDiagnostics)) &key uri diagnostics
             &allow-other-keys)
    (procref-test-emit :event "diagnostics" :file (eglot--uri-to-path uri)
                       :count (length diagnostics)
                       :text (mapconcat (lambda (d) (plist-get d :message)) diagnostics "\n")))
  (add-hook 'eglot-managed-mode-hook #'procref-test--managed))

(defun procref-test--visit ()
  (condition-case err
      (progn
        (find-file (or (getenv "PROCREF_TEST_FILE") (error "PROCREF_TEST_FILE not set")))
        ;; eglot-ensure connects from post-command-hook, after the command
        ;; that visited the file; a daemon with no client runs no commands,
        ;; so run the hook as the command loop would.
        (run-hooks 'post-command-hook))
    (error (procref-test-emit :event "error" :text (error-message-string err)))))

;; Once the command loop runs (the daemon's server is up by then).
(run-with-timer 0 nil #'procref-test--visit)

;;; emacs-harness.el ends here
