;;; readme.el --- the README's Emacs snippet, run by pm_agent_test.el  -*- lexical-binding: t; -*-
;; --- README ---
(require 'jsonrpc)
(defvar pm-agent
  (jsonrpc-process-connection
   :name "pm-agent"
   :process (make-network-process
             :name "pm-agent" :family 'local :coding 'utf-8-emacs-unix :noquery t
             :service (or (getenv "PM_AGENT_SOCKET")
                          (expand-file-name "pm-agent/pm-agent.sock" (getenv "XDG_RUNTIME_DIR"))))
   :notification-dispatcher (lambda (_conn method params) (message "%s %S" method params))))
(jsonrpc-request pm-agent 'daemon.hello '(:client "emacs"))
(jsonrpc-request pm-agent 'kv.set '(:namespace "emacs" :key "greeting" :value "hello"))
(plist-get (jsonrpc-request pm-agent 'kv.get '(:namespace "emacs" :key "greeting")) :value)
;; --- end ---
;;; readme.el ends here
