;; Build: wat2wasm oldabi.wat -o oldabi.wasm   (or ./build.sh for every fixture)
;;
;; oldabi: a plugin built for ABI 2.0. storage_abi_version is the first
;; export the host calls, so loading fails there with host.ErrIncompatible,
;; naming both versions. The rest is a complete plugin (consistent 2.0
;; metadata, reserve, call), so the version is the only thing wrong.
(module
  (memory (export "memory") 1)

  ;; Metadata, 17 bytes: abi 2.0, name "oldabi", version "1.0.0",
  ;; features 4 (agent_states), no capabilities.
  (data (i32.const 0) "\02\00" "\06oldabi" "\051.0.0" "\04" "\00")
  ;; The OK response.
  (data (i32.const 16) "\00")

  (func $pack (param $ptr i32) (param $len i32) (result i64)
    (i64.or (i64.shl (i64.extend_i32_u (local.get $ptr)) (i64.const 32))
            (i64.extend_i32_u (local.get $len))))

  ;; Major 2, minor 0: a major this host does not speak.
  (func (export "storage_abi_version") (result i32)
    (i32.const 0x00020000))

  (func (export "storage_metadata") (result i64)
    (call $pack (i32.const 0) (i32.const 17)))

  (func (export "storage_reserve") (param $size i32) (result i32)
    (i32.const 1024))

  (func (export "storage_call") (param $op i32) (param $len i32) (result i64)
    (call $pack (i32.const 16) (i32.const 1)))
)
