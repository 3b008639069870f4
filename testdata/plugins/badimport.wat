;; Build: wat2wasm badimport.wat -o badimport.wasm   (or ./build.sh for every fixture)
;;
;; badimport: a complete plugin but for one import, env.something, which no
;; storage host provides. The host checks imports before instantiating, so
;; loading fails with host.ErrIncompatible naming env.something.
(module
  (import "env" "something" (func $something))

  (memory (export "memory") 1)

  ;; Metadata, 20 bytes: abi 1.0, name "badimport", version "1.0.0",
  ;; features 4 (agent_states), no capabilities.
  (data (i32.const 0) "\01\00" "\09badimport" "\051.0.0" "\04" "\00")
  ;; The OK response.
  (data (i32.const 32) "\00")

  (func $pack (param $ptr i32) (param $len i32) (result i64)
    (i64.or (i64.shl (i64.extend_i32_u (local.get $ptr)) (i64.const 32))
            (i64.extend_i32_u (local.get $len))))

  (func (export "storage_abi_version") (result i32)
    (i32.const 0x00010000))

  (func (export "storage_metadata") (result i64)
    (call $pack (i32.const 0) (i32.const 20)))

  (func (export "storage_reserve") (param $size i32) (result i32)
    (i32.const 1024))

  (func (export "storage_call") (param $op i32) (param $len i32) (result i64)
    (call $something)
    (call $pack (i32.const 32) (i32.const 1)))
)
