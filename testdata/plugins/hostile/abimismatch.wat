;; Build: wat2wasm abimismatch.wat -o abimismatch.wasm   (or ../build.sh for every fixture)
;;
;; abimismatch: storage_abi_version says 1.2, the metadata says 1.0. Each
;; version alone is one this host loads; the ABI requires them to be
;; equal, so the host refuses the plugin at load with ErrIncompatible
;; naming the rule (host/metadata_test.go, TestHostileABIMismatch). The
;; rest is a complete plugin.
(module
  (memory (export "memory") 1)

  ;; Metadata, 22 bytes: abi 1.0, name "abimismatch", version "1.0.0",
  ;; features 4 (agent_states), no capabilities.
  (data (i32.const 0) "\01\00" "\0babimismatch" "\051.0.0" "\04" "\00")
  ;; The OK response.
  (data (i32.const 64) "\00")

  (func $pack (param $ptr i32) (param $len i32) (result i64)
    (i64.or (i64.shl (i64.extend_i32_u (local.get $ptr)) (i64.const 32))
            (i64.extend_i32_u (local.get $len))))

  (func (export "storage_abi_version") (result i32)
    (i32.const 0x00010002))

  (func (export "storage_metadata") (result i64)
    (call $pack (i32.const 0) (i32.const 22)))

  (func (export "storage_reserve") (param $size i32) (result i32)
    (i32.const 1024))

  (func (export "storage_call") (param $op i32) (param $len i32) (result i64)
    (call $pack (i32.const 64) (i32.const 1)))
)
