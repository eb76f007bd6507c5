;;; pm_agent_test.el --- pm-agentd through Emacs's built-in jsonrpc.el  -*- lexical-binding: t; -*-

;; Run by tests/test_editors.py against a real daemon:
;;
;;   PM_AGENT_SOCKET=/path/to/pm.sock \
;;     emacs --batch -Q -l tests/emacs/pm_agent_test.el -f pm-agent-test-run
;;
;; jsonrpc.el (built in since Emacs 27) speaks LSP framing (Content-Length headers) over any
;; process; here a `make-network-process' on the daemon's Unix socket.  Nothing pm-agent
;; specific is loaded.  ERT reports on stderr; one JSON object of findings goes to stdout;
;; the exit code is 0 only when every test passed.
;;
;; Two habits of jsonrpc.el a client must know (both are checked below):
;; - method names are symbols ('kv.get); jsonrpc 1.0.14 (Emacs 28) sends a string method
;;   as null;
;; - nil params are sent as "params": null.

;;; Code:

(require 'ert)
(require 'json)
(require 'jsonrpc)

(defconst pm-agent-test--dir
  (file-name-directory (or load-file-name buffer-file-name))
  "The folder of this file (readme.el sits beside it).")

(defvar pm-agent-test--findings (make-hash-table :test #'equal)
  "What the tests saw, printed as JSON at the end.")

(defun pm-agent-test--note (key value)
  (puthash key value pm-agent-test--findings))

(defun pm-agent-test--socket ()
  (or (getenv "PM_AGENT_SOCKET") (error "PM_AGENT_SOCKET is not set")))

(defun pm-agent-test--connect (name &optional on-notification)
  "A jsonrpc connection named NAME to the daemon; ON-NOTIFICATION gets (METHOD PARAMS)."
  (jsonrpc-process-connection
   :name name
   :process (make-network-process
             :name name :family 'local :service (pm-agent-test--socket)
             :coding 'utf-8-emacs-unix :noquery t)
   :notification-dispatcher (lambda (_conn method params)
                              (when on-notification (funcall on-notification method params)))))

(defun pm-agent-test--error-code (err)
  (alist-get 'jsonrpc-error-code (cdr err)))

(defun pm-agent-test--wait-for (predicate seconds)
  "Let process output in until PREDICATE returns non-nil or SECONDS pass."
  (let ((deadline (+ (float-time) seconds)))
    (while (and (not (funcall predicate)) (< (float-time) deadline))
      (accept-process-output nil 0.05))
    (funcall predicate)))

(ert-deftest pm-agent-readme-snippet ()
  "The README's snippet, loaded as it is, leaves a working `pm-agent' connection."
  (load (expand-file-name "readme.el" pm-agent-test--dir) nil t)
  (unwind-protect
      (let ((value (plist-get (jsonrpc-request pm-agent 'kv.get '(:namespace "emacs" :key "greeting"))
                              :value)))
        (should (equal value "hello"))
        (pm-agent-test--note "readme_value" value))
    (jsonrpc-shutdown pm-agent t)))

(ert-deftest pm-agent-hello-kv-events ()
  "daemon.hello, a write and a read with non-ASCII text, and the events.event it causes."
  (let* ((events nil)
         (conn (pm-agent-test--connect
                "pm-agent-test"
                (lambda (method params)
                  (when (eq method 'events.event) (push params events)))))
         (value '(:text "héllo wörld — €😀" :n 42 :list [1 2 3])))
    (unwind-protect
        (let* ((hello (jsonrpc-request conn 'daemon.hello
                                       '(:client "emacs-jsonrpc" :protocol_version 1)))
               (subscribed (jsonrpc-request conn 'events.subscribe '(:topics ["kv"])))
               (set (jsonrpc-request conn 'kv.set `(:namespace "emacs" :key "greeting2" :value ,value)))
               (got (jsonrpc-request conn 'kv.get '(:namespace "emacs" :key "greeting2"))))
          (should (stringp (plist-get hello :daemon_version)))
          (should (eq (plist-get hello :compatible) t))
          (should (integerp (plist-get subscribed :subscription)))
          (should (equal (plist-get got :value) value))
          (should (pm-agent-test--wait-for (lambda () events) 10))
          (let ((event (plist-get (car events) :event)))
            (should (equal (plist-get event :type) "kv.created"))
            (should (equal (plist-get (plist-get event :data) :key) "greeting2"))
            (pm-agent-test--note "event_type" (plist-get event :type))
            (pm-agent-test--note "event_seq" (plist-get event :seq)))
          (pm-agent-test--note "emacs_version" emacs-version)
          (pm-agent-test--note "daemon_version" (plist-get hello :daemon_version))
          (pm-agent-test--note "protocol_version" (plist-get hello :protocol_version))
          (pm-agent-test--note "created" (plist-get set :created))
          (pm-agent-test--note "value_roundtrip" (equal (plist-get got :value) value)))
      (jsonrpc-shutdown conn t))))

(ert-deftest pm-agent-errors-are-jsonrpc-errors ()
  "A daemon error arrives as a `jsonrpc-error' with its code and data."
  (let ((conn (pm-agent-test--connect "pm-agent-test-errors")))
    (unwind-protect
        (let ((err (should-error (jsonrpc-request conn 'kv.get '(:namespace "emacs"))
                                 :type 'jsonrpc-error)))
          (should (equal (pm-agent-test--error-code err) -32602))
          (should (equal (plist-get (alist-get 'jsonrpc-error-data (cdr err)) :field) "key"))
          (pm-agent-test--note "invalid_params_code" (pm-agent-test--error-code err))
          ;; What nil params (sent as "params": null) get: recorded, judged by the Python test.
          (pm-agent-test--note
           "nil_params"
           (condition-case e
               (progn (jsonrpc-request conn 'daemon.status nil) "ok")
             (jsonrpc-error (pm-agent-test--error-code e)))))
      (jsonrpc-shutdown conn t))))

(defun pm-agent-test-run ()
  "Run every pm-agent test, print the findings as JSON on stdout, exit 0 only if all passed."
  (let ((stats (ert-run-tests-batch "^pm-agent-")))
    (princ (concat (json-encode pm-agent-test--findings) "\n"))
    (kill-emacs (if (zerop (ert-stats-completed-unexpected stats)) 0 1))))

;;; pm_agent_test.el ends here
