;; Build: wat2wasm trapconfig.wat -o trapconfig.wasm   (or ../build.sh for every fixture)
;;
;; trapconfig: a plugin that loads (its handshake, metadata and exports
;; are valid) and traps on every call, the configuration call first. The
;; error must say the module failed, not that the plugin refused its
;; options (cmd/storage-host/internal/config,
;; TestPluginOfTheWrongShape).
;;
;; Features: agent_states; capabilities: none.
(module
  (memory (export "memory") 1)

  ;; Metadata, 21 bytes: abi 1.0, name "trapconfig", version "1.0.0",
  ;; features 4 (agent_states), no capabilities.
  (data (i32.const 0x000) "\01\00" "\0atrapconfig" "\051.0.0" "\04" "\00")

  (func (export "storage_abi_version") (result i32)
    (i32.const 0x00010000))

  (func (export "storage_metadata") (result i64)
    (i64.const 21))

  (func (export "storage_reserve") (param $size i32) (result i32)
    (i32.const 0x1000))

  (func (export "storage_call") (param $op i32) (param $len i32) (result i64)
    (unreachable))
)
